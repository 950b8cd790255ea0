"""The portal's tests share one collector with two partners and two customers per module."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from harness.database import PrivatePostgres, own_database_env
from tests.portal.world import World, build


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[World]:
    w = build(tmp_path_factory.mktemp("portal"), env=own_database_env(postgres_server))
    try:
        yield w
    finally:
        w.collector.kill(signal.SIGTERM)

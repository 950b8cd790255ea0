"""The portal's tests share one collector with two partners and two customers per module."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.portal.world import World, build


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build(tmp_path_factory.mktemp("portal"))
    try:
        yield w
    finally:
        w.collector.kill(signal.SIGTERM)

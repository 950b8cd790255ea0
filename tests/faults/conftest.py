"""Fixtures for fault injection against a real collector process: collectors with a
configuration of the test's own (the tmpfs for a full disk is in ``tests/conftest.py``)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import Collector


@pytest.fixture
def make_collector(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    """``make_collector(data_dir, toml, healthy=True)``: a started collector process with
    ``toml`` as its configuration file; stopped at teardown."""
    made: list[Collector] = []

    def make(data_dir: Path, toml: str = "", healthy: bool = True) -> Collector:
        config = tmp_path / f"collector-{len(made)}.toml"
        config.write_text(toml)
        c = Collector(data_dir, config=config)
        made.append(c)
        return c.start(healthy=healthy)

    yield make
    for c in made:
        c.kill(signal.SIGTERM)

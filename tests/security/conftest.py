"""Fixtures for the security tests: real collector processes with a configuration."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import Collector

MakeCollector = Callable[..., Collector]


@pytest.fixture
def collector_with(tmp_path: Path) -> Iterator[MakeCollector]:
    """Start a collector with this TOML configuration (several may run, each its own dir)."""
    made: list[Collector] = []

    def make(config: str = "", name: str = "collector") -> Collector:
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(config)
        c = Collector(tmp_path / name, config=cfg).start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.kill(signal.SIGTERM)

"""Fixtures for over-the-wire tests: a real collector process, real agents, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Agent, Collector

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    c = Collector(tmp_path / "collector").start()
    try:
        yield c
    finally:
        c.kill(signal.SIGTERM)


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Any]:
    made: list[Agent] = []

    def make(name: str = "agent", extra_config: str = "") -> Agent:
        a = Agent(tmp_path / name, extra_config)
        made.append(a)
        return a

    yield make
    for a in made:
        a.kill(signal.SIGKILL)

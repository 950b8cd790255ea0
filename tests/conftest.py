"""Fixtures for over-the-wire tests: a real collector process, real agents, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Agent, Collector

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def _known_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vigil-backup`` pins server keys in a file of its own: one per test, never the
    user's ``~/.config/vigil/known_servers``."""
    monkeypatch.setenv("VIGIL_KNOWN_SERVERS", str(tmp_path / "known_servers"))


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


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount a small tmpfs (``size`` as mount(8) takes it, e.g. ``"512k"``) on a directory,
    for tests of a full disk; unmounted at teardown. Needs root: skipped, saying so,
    where the mount is refused."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)

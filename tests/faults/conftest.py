"""Fixtures for fault injection against a real collector process: a small tmpfs to fill
(a full disk), collectors with a configuration of the test's own."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import Collector


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("24m")`` mounts a tmpfs of that size and returns its directory; unmounted
    at teardown. Skipped (with the reason) where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for a full-disk test: {out.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


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

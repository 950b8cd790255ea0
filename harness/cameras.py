"""Simulated ONVIF cameras for a test: ``vigil-sim cameras`` as its own process on
127.0.0.1, with the fleet it describes and the agent's ``[cameras]`` table for it."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.processes import BIN


@dataclass(frozen=True)
class SimulatedFleet:
    cameras: list[dict[str, Any]]
    """What ``vigil-sim --json`` says of each camera (address, port, serial, ...)."""
    table: str
    """The agent's ``[cameras]`` table for them ("" when no folder was given)."""


@contextmanager
def simulated_cameras(
    count: int, folder: Path | None = None, faults: str = ""
) -> Iterator[SimulatedFleet]:
    """``count`` cameras (``faults`` as ``vigil-sim --faults`` takes them); with ``folder``,
    the agent's table is written there too. Stopped with SIGTERM on the way out."""
    args = [str(BIN / "vigil-sim"), "cameras", "--count", str(count), "--json"]
    if faults:
        args += ["--faults", faults]
    table = None if folder is None else folder / "cameras.toml"
    if table is not None:
        args += ["--write-agent-config", str(table)]
    sim = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None
        cameras = json.loads(sim.stdout.readline())["cameras"]
        yield SimulatedFleet(cameras, "" if table is None else table.read_text())
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=15)

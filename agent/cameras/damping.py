"""Flap damping: a camera's reported verdict changes only after the same raw verdict on
``threshold`` consecutive probes. The state (per camera: reported verdict and evidence, the
verdict being counted, the serial number on record) survives restarts in one JSON file in
the agent's state directory, replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "cameras.json"
STATE_VERSION = 1
log = logging.getLogger(__name__)


@dataclass
class CameraState:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    candidate: str = ""
    count: int = 0
    serial: str = ""
    since: float = 0.0
    """When the reported verdict last changed (epoch seconds)."""


class DampingStore:
    def __init__(self, state_dir: Path, threshold: int) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self.threshold = max(1, threshold)
        self.cameras: dict[str, CameraState] = {}
        self._dirty = False

    def load(self) -> None:
        """Read the state file; a missing or unreadable one starts afresh (logged)."""
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            self.cameras = {
                key: CameraState(
                    verdict=str(raw["verdict"]),
                    reasons=[str(r) for r in raw.get("reasons", [])],
                    candidate=str(raw.get("candidate", "")),
                    count=int(raw.get("count", 0)),
                    serial=str(raw.get("serial", "")),
                    since=float(raw.get("since", 0.0)),
                )
                for key, raw in data["cameras"].items()
            }
        except FileNotFoundError:
            self.cameras = {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("camera state %s unreadable (%s); starting afresh", self.path, exc)
            self.cameras = {}

    def serial(self, key: str) -> str:
        state = self.cameras.get(key)
        return state.serial if state else ""

    def record_serial(self, key: str, serial: str) -> None:
        state = self.cameras.get(key)
        if state is not None and serial and state.serial != serial:
            state.serial = serial
            self._dirty = True

    def apply(
        self, key: str, raw: str, reasons: list[str], now: float | None = None
    ) -> CameraState:
        """Feed one probe's raw verdict; returns the state holding the reported verdict."""
        now = time.time() if now is None else now
        state = self.cameras.get(key)
        if state is None:
            state = self.cameras[key] = CameraState(verdict=raw, reasons=list(reasons), since=now)
            self._dirty = True
            return state
        before = (state.verdict, state.reasons, state.candidate, state.count)
        if raw == state.verdict:
            state.reasons = list(reasons)
            state.candidate, state.count = "", 0
        else:
            if state.candidate == raw:
                state.count += 1
            else:
                state.candidate, state.count = raw, 1
            if state.count >= self.threshold:
                state.verdict, state.reasons, state.since = raw, list(reasons), now
                state.candidate, state.count = "", 0
        if (state.verdict, state.reasons, state.candidate, state.count) != before:
            self._dirty = True
        return state

    def retain(self, keys: set[str]) -> None:
        for key in [k for k in self.cameras if k not in keys]:
            del self.cameras[key]
            self._dirty = True

    def save(self) -> None:
        """Write the state if it changed: temporary file, fsync, rename."""
        if not self._dirty:
            return
        doc = {
            "version": STATE_VERSION,
            "cameras": {key: asdict(state) for key, state in sorted(self.cameras.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cameras.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self._dirty = False

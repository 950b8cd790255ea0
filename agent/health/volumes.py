"""Storage: every mounted volume and the configured recording volumes, with forecasts."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import psutil

from agent import platform
from agent.health.forecast import fill_rate, full_at, keep_sample
from agent.identity import write_atomic
from protocol.messages import Volume

log = logging.getLogger("vigil.agent.volumes")


class VolumeProbe:
    """Reads volumes; keeps usage samples (state dir) to forecast when each is full."""

    def __init__(
        self, state_dir: Path, recording: tuple[str, ...], ignore_fstypes: tuple[str, ...]
    ) -> None:
        self.path = state_dir / "volumes.json"
        self.recording = tuple(os.path.realpath(p) for p in recording)
        self.ignore = set(ignore_fstypes)
        self.samples: dict[str, list[tuple[float, int]]] = {}
        try:
            raw = json.loads(self.path.read_text())
            self.samples = {k: [(float(t), int(u)) for t, u in v] for k, v in raw.items()}
        except (OSError, ValueError):
            pass

    def _mounts(self) -> list[tuple[str, str, str]]:
        found = platform.mounts(self.ignore)
        seen = {m.mountpoint for m in found}
        out = [(m.mountpoint, m.device, m.fstype) for m in found]
        for rec in self.recording:
            if rec not in seen:
                seen.add(rec)
                out.append((rec, "", ""))
        return out

    def read(self, now: float | None = None) -> list[Volume]:
        t = time.time() if now is None else now
        vols = []
        for mount, device, fstype in self._mounts():
            recording = mount in self.recording
            try:
                u = psutil.disk_usage(mount)
            except OSError as exc:
                vols.append(
                    Volume(
                        mountpoint=mount,
                        device=device,
                        fstype=fstype,
                        total=0,
                        used=0,
                        free=0,
                        recording=recording,
                        error=f"cannot read usage: {exc}",
                    )
                )
                continue
            series = keep_sample(self.samples.get(mount, []), t, u.used)
            self.samples[mount] = series
            pts = series if series[-1][0] == t else [*series, (t, u.used)]
            rate = fill_rate(pts)
            vols.append(
                Volume(
                    mountpoint=mount,
                    device=device,
                    fstype=fstype,
                    total=u.total,
                    used=u.used,
                    free=u.free,
                    recording=recording,
                    fill_rate_bytes_per_day=rate,
                    full_at=full_at(t, u.free, rate),
                )
            )
        try:
            write_atomic(self.path, json.dumps(self.samples).encode())
        except OSError as exc:
            log.warning("cannot keep volume samples in %s: %s", self.path, exc)
        return vols

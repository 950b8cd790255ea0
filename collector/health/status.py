"""A server's status at a glance, from its stored state: pure functions, no I/O.

``offline`` wins over everything: a server that stopped reporting must never show green
on the strength of its last good report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

STATUSES = ("ok", "warning", "critical", "offline", "unmonitored", "pending", "revoked")

VOLUME_WARN_PERCENT = 90.0
VOLUME_CRIT_PERCENT = 97.0
FULL_WARN_S = 7 * 86400
FULL_CRIT_S = 2 * 86400
CAMERA_DOWN = frozenset({"unreachable", "auth_failed", "error"})


class VolumeSummary(msgspec.Struct, gc=False):
    """A volume as the fleet list shows it (decoded straight from the stored state)."""

    mountpoint: str = ""
    total: int = 0
    used: int = 0
    free: int = 0
    full_at: float | None = None
    recording: bool = False
    error: str = ""


class SoftwareSummary(msgspec.Struct, gc=False):
    product: str = ""
    version: str = ""
    error: str = ""


class DiskSummary(msgspec.Struct, gc=False):
    device: str = ""
    health: str = "unknown"
    failing: list[str] = []
    warnings: list[str] = []


class StateSummary(msgspec.Struct, gc=False):
    """What the status needs of a server's stored latest state; unknown fields ignored."""

    collected_at: float | None = None
    volumes: list[VolumeSummary] = []
    software: SoftwareSummary = msgspec.field(default_factory=SoftwareSummary)
    camera_counts: dict[str, int] | None = None
    disks: list[DiskSummary] | None = None
    heartbeat_only: str = ""


decode_summary = msgspec.json.Decoder(StateSummary).decode


def used_percent(used: float, free: float) -> float:
    """A volume's use as ``df`` and psutil show it: used / (used + available), where the
    available space excludes the blocks reserved for root (5 % on ext4 by default). A full
    ext4 volume is 100 %, not the 95 % that used / total would say."""
    room = used + free
    return 100.0 * used / room if room > 0 else 0.0


@dataclass
class Status:
    status: str
    reasons: list[str] = field(default_factory=list)


def _worse(a: str, b: str) -> str:
    order = {"ok": 0, "warning": 1, "critical": 2}
    return a if order[a] >= order[b] else b


def evaluate(
    *,
    now: float,
    last_seen: float | None,
    revoked_at: float | None,
    interval_s: int,
    offline_after_intervals: int,
    state: StateSummary,
    grace_s: float = 0,
) -> Status:
    if revoked_at is not None:
        return Status("revoked", ["credentials revoked"])
    if last_seen is None:
        return Status("pending", ["enrolled, no report yet"])
    silent = now - last_seen
    if silent > offline_after_intervals * interval_s + grace_s:
        return Status("offline", [offline_reason(silent, interval_s)])
    if state.heartbeat_only:
        return Status(
            "unmonitored", [f"reporting; health monitoring not offered: {state.heartbeat_only}"]
        )
    found = [
        *(f for vol in state.volumes for f in _volume_findings(vol, now)),
        *_camera_findings(state.camera_counts or {}),
        *_disk_findings(state.disks or []),
    ]
    if state.software.error:
        found.append(("warning", f"video software version unknown: {state.software.error}"))
    level = "ok"
    for worse, _ in found:
        level = _worse(level, worse)
    return Status(level, [reason for _, reason in found])


def offline_reason(silent_s: float, interval_s: int) -> str:
    """Why an offline server is offline, in words (they change with every second)."""
    return f"no report for {int(silent_s)} s (expected every {interval_s} s)"


Finding = tuple[str, str]
"""(level, reason) of one thing a status names."""


def _volume_findings(vol: VolumeSummary, now: float) -> list[Finding]:
    pct = used_percent(vol.used, vol.free) if vol.total else 0.0
    name = vol.mountpoint or "?"
    if vol.error:
        return [("warning", f"volume {name}: {vol.error}")]
    found: list[Finding] = []
    if pct >= VOLUME_CRIT_PERCENT:
        found.append(("critical", f"volume {name} is {pct:.0f}% full"))
    elif pct >= VOLUME_WARN_PERCENT:
        found.append(("warning", f"volume {name} is {pct:.0f}% full"))
    if vol.full_at is not None and vol.recording:
        left = vol.full_at - now
        if left <= FULL_CRIT_S:
            found.append(
                ("critical", f"recording volume {name} full within {max(left, 0) / 3600:.0f} h")
            )
        elif left <= FULL_WARN_S:
            found.append(
                ("warning", f"recording volume {name} full within {left / 86400:.1f} days")
            )
    return found


def volume_level(vol: VolumeSummary, now: float) -> str:
    """``ok``, ``warning`` or ``critical``: the worst of the volume's fill level and its
    recording forecast, as its findings say (what its fill bar's colour shows)."""
    level = "ok"
    for worse, _ in _volume_findings(vol, now):
        level = _worse(level, worse)
    return level


def _camera_findings(cams: dict[str, int]) -> list[Finding]:
    found: list[Finding] = []
    down = sum(n for v, n in cams.items() if v in CAMERA_DOWN)
    degraded = cams.get("degraded", 0)
    if down:
        found.append(("warning", f"{down} camera(s) down"))
    if degraded:
        found.append(("warning", f"{degraded} camera(s) degraded"))
    return found


def _disk_findings(disks: list[DiskSummary]) -> list[Finding]:
    found: list[Finding] = []
    for disk in disks:
        if disk.health == "failing":
            why = disk.failing[0] if disk.failing else "SMART says failing"
            found.append(("critical", f"disk {disk.device} failing: {why}"))
        elif disk.warnings:
            found.append(("warning", f"disk {disk.device}: {disk.warnings[0]}"))
    return found

"""A server's status at a glance, from its stored state: pure functions, no I/O.

``offline`` wins over everything: a server that stopped reporting must never show green
on the strength of its last good report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "warning", "critical", "offline", "unmonitored", "pending", "revoked")

VOLUME_WARN_PERCENT = 90.0
VOLUME_CRIT_PERCENT = 97.0
FULL_WARN_S = 7 * 86400
FULL_CRIT_S = 2 * 86400
CAMERA_DOWN = frozenset({"unreachable", "auth_failed", "error"})


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
    state: dict[str, Any],
) -> Status:
    if revoked_at is not None:
        return Status("revoked", ["credentials revoked"])
    if last_seen is None:
        return Status("pending", ["enrolled, no report yet"])
    silent = now - last_seen
    if silent > offline_after_intervals * interval_s:
        return Status(
            "offline",
            [f"no report for {int(silent)} s (expected every {interval_s} s)"],
        )
    if state.get("heartbeat_only"):
        return Status(
            "unmonitored", [f"reporting; health monitoring not offered: {state['heartbeat_only']}"]
        )
    level = "ok"
    reasons: list[str] = []
    for vol in state.get("volumes", []):
        total = vol.get("total") or 0
        pct = 100.0 * vol.get("used", 0) / total if total else 0.0
        name = vol.get("mountpoint", "?")
        if vol.get("error"):
            level = _worse(level, "warning")
            reasons.append(f"volume {name}: {vol['error']}")
            continue
        if pct >= VOLUME_CRIT_PERCENT:
            level = _worse(level, "critical")
            reasons.append(f"volume {name} is {pct:.0f}% full")
        elif pct >= VOLUME_WARN_PERCENT:
            level = _worse(level, "warning")
            reasons.append(f"volume {name} is {pct:.0f}% full")
        full_at = vol.get("full_at")
        if full_at is not None and vol.get("recording"):
            left = full_at - now
            if left <= FULL_CRIT_S:
                level = _worse(level, "critical")
                reasons.append(f"recording volume {name} full within {max(left, 0) / 3600:.0f} h")
            elif left <= FULL_WARN_S:
                level = _worse(level, "warning")
                reasons.append(f"recording volume {name} full within {left / 86400:.1f} days")
    cams = state.get("camera_counts") or {}
    down = sum(n for v, n in cams.items() if v in CAMERA_DOWN)
    degraded = cams.get("degraded", 0)
    if down:
        level = _worse(level, "warning")
        reasons.append(f"{down} camera(s) down")
    if degraded:
        level = _worse(level, "warning")
        reasons.append(f"{degraded} camera(s) degraded")
    sw = state.get("software") or {}
    if sw.get("error"):
        level = _worse(level, "warning")
        reasons.append(f"video software version unknown: {sw['error']}")
    return Status(level, reasons)

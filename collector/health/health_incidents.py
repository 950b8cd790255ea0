"""Health findings that open incidents on the server's contract (at the plan's priority).

Ingest calls these inside its write, only on the events that matter: a camera that
goes down, a recording volume forecast full within 48 hours, a disk SMART calls failing.
The contract engine decides the priority from the partner's map, the due times from the
contract's calendar, and opens no second incident while one for the same server and kind
is open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from collector.contracts.service import clear_finding_incidents, open_incident_for_finding
from collector.health import cameras
from collector.health.cameras import Transition
from collector.health.status import CAMERA_DOWN
from protocol.messages import Disk, Volume

FULL_WITHIN_S = 48 * 3600


def cameras_changed(
    conn: sqlite3.Connection, server_id: str, changes: list[Transition], at: float
) -> str | None:
    down = [t for t in changes if t.after in CAMERA_DOWN and t.before not in CAMERA_DOWN]
    if not down:
        if any(t.before in CAMERA_DOWN for t in changes) and not cameras.count_with_verdicts(
            conn, server_id, CAMERA_DOWN
        ):
            # The last camera down came back: the incident awaits the customer's acceptance.
            clear_finding_incidents(conn, f"{server_id}:camera_offline", at, "cameras back up")
        return None
    names = ", ".join(f"{t.key} ({t.after})" for t in down[:5])
    return open_incident_for_finding(conn, server_id, "camera_offline", f"camera down: {names}", at)


def filling(volumes: list[Volume], at: float) -> list[Volume]:
    """Recording volumes forecast full within 48 hours of ``at``."""
    return [
        v
        for v in volumes
        if v.recording and v.full_at is not None and v.full_at - at <= FULL_WITHIN_S
    ]


def volumes_filling(
    conn: sqlite3.Connection, server_id: str, volumes: list[Volume], at: float
) -> str | None:
    """Open an incident for the first of ``volumes`` (from :func:`filling`)."""
    if not volumes:
        return None
    v = volumes[0]
    hours = max(0.0, ((v.full_at or at) - at) / 3600)
    return open_incident_for_finding(
        conn,
        server_id,
        "volume_full_48h",
        f"recording volume {v.mountpoint} full within {hours:.0f} h",
        at,
    )


def disks_failing(
    conn: sqlite3.Connection, server_id: str, disks: Sequence[Disk], at: float
) -> str | None:
    """Open a ``disk_failing`` incident naming the failing disks and the first reason."""
    if not disks:
        return None
    names = ", ".join(f"{d.device} ({d.model or 'unknown model'})" for d in disks[:5])
    why = disks[0].failing[0] if disks[0].failing else "SMART reports failing"
    return open_incident_for_finding(
        conn, server_id, "disk_failing", f"disk failing: {names}: {why}", at
    )


def disks_healthy(conn: sqlite3.Connection, server_id: str, at: float) -> None:
    """Every disk passes again: an open ``disk_failing`` incident awaits acceptance."""
    clear_finding_incidents(conn, f"{server_id}:disk_failing", at, "disks healthy")

"""Health findings that open incidents on the server's contract (through the plan's priority map).

Ingest calls these inside its write, only on the events that matter: a camera that
goes down, a recording volume forecast full within 48 hours. The contract engine decides
the priority from the partner's map, the due times from the contract's calendar, and
opens no second incident while one for the same server and kind is open.
"""

from __future__ import annotations

import sqlite3

from collector.contracts.service import clear_finding_incidents, open_incident_for_finding
from collector.health.cameras import Transition
from collector.health.status import CAMERA_DOWN
from protocol.messages import Disk, Volume

FULL_WITHIN_S = 48 * 3600


def cameras_changed(
    conn: sqlite3.Connection, server_id: str, changes: list[Transition], at: float
) -> str | None:
    down = [t for t in changes if t.after in CAMERA_DOWN and t.before not in CAMERA_DOWN]
    if not down:
        if any(t.before in CAMERA_DOWN for t in changes) and not _cameras_down(conn, server_id):
            # The last camera down came back: the incident awaits the customer's acceptance.
            clear_finding_incidents(conn, f"{server_id}:camera_offline", at, "cameras back up")
        return None
    names = ", ".join(f"{t.key} ({t.after})" for t in down[:5])
    return open_incident_for_finding(conn, server_id, "camera_offline", f"camera down: {names}", at)


def _cameras_down(conn: sqlite3.Connection, server_id: str) -> int:
    marks = ", ".join("?" for _ in CAMERA_DOWN)
    row = conn.execute(
        f"SELECT COUNT(*) FROM cameras WHERE server_id = ? AND removed_at IS NULL "
        f"AND verdict IN ({marks})",
        (server_id, *sorted(CAMERA_DOWN)),
    ).fetchone()
    return int(row[0])


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


DISK_BAD = frozenset({"failing", "pre_failing"})


def disks_judged(
    conn: sqlite3.Connection, server_id: str, disks: list[Disk], at: float
) -> str | None:
    """A failing or pre-failing disk opens ``disk_failing`` (once while it is open); when
    every disk reads healthy again the incident awaits the customer's acceptance. A disk
    smartctl could not read (``unknown``) changes nothing either way."""
    bad = [d for d in disks if d.health in DISK_BAD]
    if bad:
        words = ", ".join(
            f"{d.device} {d.health.replace('_', '-')}" + (f" ({d.reasons[0]})" if d.reasons else "")
            for d in bad[:3]
        )
        return open_incident_for_finding(conn, server_id, "disk_failing", f"disk: {words}", at)
    if disks and all(d.health == "ok" for d in disks):
        clear_finding_incidents(conn, f"{server_id}:disk_failing", at, "disks healthy")
    return None

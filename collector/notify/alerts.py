"""The routing state: per (route, de-duplication key), the latest event and what was sent.

:mod:`collector.notify.dispatch` decides; this module holds ``notify_alerts``' SQL. The
repeats query reads the routes' repeat interval beside the alerts, so that only the
alerts due again leave the database.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass
class Alert:
    route_id: int
    key: str
    event_id: int
    status: str
    kind: str
    group_key: str
    pending_since: float | None
    sent_status: str | None
    sent_kind: str | None
    sent_at: float | None
    firing_sent_at: float | None
    resolved_sent_at: float | None


_COLS = (
    "route_id, dedup_key, event_id, status, kind, group_key, pending_since, sent_status, "
    "sent_kind, sent_at, firing_sent_at, resolved_sent_at"
)

EVENTS_POINTED_AT = "SELECT event_id FROM notify_alerts"
"""The events some alert points at (its latest state), as a subquery: the events' prune
keeps them in the same statement (:func:`collector.notify.events.prune`), with no list
of ids to pass between two statements."""


def note_event(
    conn: sqlite3.Connection,
    route_id: int,
    key: str,
    event_id: int,
    status: str,
    kind: str,
    group: str,
    now: float,
) -> None:
    """The event is the alert's latest state, pending since now (or since it already was)."""
    conn.execute(
        "INSERT INTO notify_alerts (route_id, dedup_key, event_id, status, kind, "
        "group_key, pending_since) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (route_id, dedup_key) DO UPDATE SET event_id = excluded.event_id, "
        "status = excluded.status, kind = excluded.kind, group_key = excluded.group_key, "
        "pending_since = COALESCE(notify_alerts.pending_since, excluded.pending_since)",
        (route_id, key, event_id, status, kind, group, now),
    )


def candidates(conn: sqlite3.Connection, now: float) -> list[Alert]:
    """The pending alerts, and the firing ones whose route's repeat interval has passed."""
    pending = conn.execute(
        f"SELECT {_COLS} FROM notify_alerts WHERE pending_since IS NOT NULL"
    ).fetchall()
    repeats = conn.execute(
        f"SELECT {', '.join('a.' + c.strip() for c in _COLS.split(','))} "
        "FROM notify_alerts a JOIN notify_routes r ON r.id = a.route_id "
        "WHERE a.pending_since IS NULL AND a.status = 'firing' AND a.sent_status = 'firing' "
        "AND r.digest = 0 AND a.sent_at + r.repeat_s <= ?",
        (now,),
    ).fetchall()
    return [Alert(*r) for r in (*pending, *repeats)]


def settle(conn: sqlite3.Connection, a: Alert, sent_status: str | None) -> None:
    """Nothing to send for the alert: no longer pending, ``sent_status`` as told."""
    conn.execute(
        "UPDATE notify_alerts SET pending_since = NULL, sent_status = ? "
        "WHERE route_id = ? AND dedup_key = ?",
        (sent_status, a.route_id, a.key),
    )


def mark_sent(conn: sqlite3.Connection, a: Alert, now: float, firing: bool) -> None:
    """The alert's state left in a message at ``now``."""
    stamp = "firing_sent_at" if firing else "resolved_sent_at"
    conn.execute(
        f"UPDATE notify_alerts SET pending_since = NULL, sent_status = ?, sent_kind = ?, "
        f"sent_at = ?, {stamp} = ? WHERE route_id = ? AND dedup_key = ?",
        (a.status, a.kind, now, now, a.route_id, a.key),
    )


def forget_route(conn: sqlite3.Connection, route_id: int) -> None:
    conn.execute("DELETE FROM notify_alerts WHERE route_id = ?", (route_id,))

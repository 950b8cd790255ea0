"""The events outbox: every state change worth telling, written in the caller's transaction.

A feature that changes state (ingest, the contract checks, the sweep) calls :func:`fire`
or :func:`clear` with the connection of the write that makes the change, so the event
commits or rolls back with it: a collector killed after the commit still has the event
to send, and one killed before it has neither. A condition (a camera down, a server
offline) is identified by a stable de-duplication key; the ``notify_conditions`` table
holds the active ones, so the same state reported again writes no second event.
One-off facts (an incident accepted) go through :func:`emit` directly.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from collector.health import servers
from collector.notify import alerts

SEVERITIES = ("info", "warning", "high", "critical")
"""In increasing order; routes take events from a minimum severity up."""

KINDS: dict[str, str] = {
    "server.offline": "critical",
    "camera.down": "high",
    "camera.degraded": "warning",
    "volume.filling": "high",
    "disk.failing": "high",
    "backup.overdue": "warning",
    "backup.failed": "warning",
    "backup.integrity": "high",
    "incident.opened": "high",
    "incident.resolved": "info",
    "incident.accepted": "info",
    "sla.warning": "warning",
    "sla.breached": "critical",
    "contract.finding": "warning",
    "test": "info",
}
"""Every event kind with its default severity (``docs/notifications.md`` describes each)."""

FIRING, RESOLVED = "firing", "resolved"


def severity_rank(severity: str) -> int:
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 0


def _partner_of(conn: sqlite3.Connection, server_id: str | None) -> int | None:
    if server_id is None:
        return None
    return servers.partner_id_of(conn, server_id)


def emit(
    conn: sqlite3.Connection,
    kind: str,
    dedup_key: str,
    subject: str,
    at: float,
    *,
    status: str = FIRING,
    server_id: str | None = None,
    partner_id: int | None = None,
    severity: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Write one event; return its id. ``partner_id`` defaults to the server's partner."""
    if partner_id is None:
        partner_id = _partner_of(conn, server_id)
    cur = conn.execute(
        "INSERT INTO notify_events (kind, status, severity, dedup_key, partner_id, server_id, "
        "subject, data, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            kind,
            status,
            severity or KINDS.get(kind, "warning"),
            dedup_key,
            partner_id,
            server_id,
            subject,
            json.dumps(data or {}, sort_keys=True, default=str),
            at,
        ),
    )
    return int(cur.fetchone()[0])


def fire(
    conn: sqlite3.Connection,
    kind: str,
    dedup_key: str,
    subject: str,
    at: float,
    **more: Any,
) -> int | None:
    """Start (or change the kind of) the condition ``dedup_key``; an event only if it was
    not already active with this kind. Returns the event id or None."""
    row = conn.execute(
        "SELECT kind FROM notify_conditions WHERE dedup_key = ?", (dedup_key,)
    ).fetchone()
    if row is not None and row[0] == kind:
        return None
    if row is None:
        conn.execute(
            "INSERT INTO notify_conditions (dedup_key, kind, server_id, since) VALUES (?, ?, ?, ?)",
            (dedup_key, kind, more.get("server_id"), at),
        )
    else:
        conn.execute(
            "UPDATE notify_conditions SET kind = ?, since = ? WHERE dedup_key = ?",
            (kind, at, dedup_key),
        )
    return emit(conn, kind, dedup_key, subject, at, **more)


def clear(
    conn: sqlite3.Connection, dedup_key: str, subject: str, at: float, **more: Any
) -> int | None:
    """End the condition ``dedup_key``: a resolved event if it was active."""
    row = conn.execute(
        "SELECT kind, since FROM notify_conditions WHERE dedup_key = ?", (dedup_key,)
    ).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM notify_conditions WHERE dedup_key = ?", (dedup_key,))
    data = dict(more.pop("data", None) or {})
    data.setdefault("since", row[1])
    return emit(
        conn,
        row[0],
        dedup_key,
        subject,
        at,
        status=RESOLVED,
        severity=more.pop("severity", None) or KINDS.get(row[0], "warning"),
        data=data,
        **more,
    )


def active(conn: sqlite3.Connection, server_id: str) -> dict[str, str]:
    """dedup key -> kind of the server's active conditions."""
    return {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT dedup_key, kind FROM notify_conditions WHERE server_id = ?", (server_id,)
        )
    }


def servers_with_conditions(conn: sqlite3.Connection, server_ids: Sequence[str]) -> set[str]:
    """Those of ``server_ids`` with an active condition, in one query."""
    ids = list(dict.fromkeys(server_ids))
    if not ids:
        return set()
    marks = ", ".join("?" for _ in ids)
    return {
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT server_id FROM notify_conditions WHERE server_id IN ({marks})", ids
        )
    }


def forget(conn: sqlite3.Connection, dedup_key: str) -> None:
    """End the condition ``dedup_key`` without an event (a newer one says it)."""
    conn.execute("DELETE FROM notify_conditions WHERE dedup_key = ?", (dedup_key,))


def forget_prefixed(conn: sqlite3.Connection, prefix: str) -> None:
    """End, without events, every condition whose key starts with ``prefix``."""
    conn.execute("DELETE FROM notify_conditions WHERE dedup_key LIKE ?", (f"{prefix}%",))


def active_sweep_kinds(conn: sqlite3.Connection) -> dict[str, str]:
    """dedup key -> kind of the active conditions the sweep judges (servers, backups, SLAs)."""
    return {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT dedup_key, kind FROM notify_conditions WHERE kind LIKE 'server.%' "
            "OR kind LIKE 'backup.%' OR kind LIKE 'sla.%'"
        )
    }


# --- routing's side of the outbox ----------------------------------------------------------


def unrouted(conn: sqlite3.Connection, limit: int) -> list[Any]:
    """Up to ``limit`` events not yet routed, oldest first: (id, kind, status, severity,
    dedup key, partner id, server id, at)."""
    return conn.execute(
        "SELECT id, kind, status, severity, dedup_key, partner_id, server_id, at "
        "FROM notify_events WHERE routed_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()


def claim(conn: sqlite3.Connection, event_id: int, now: float) -> bool:
    """Mark the event routed; False when another process already did."""
    return (
        conn.execute(
            "UPDATE notify_events SET routed_at = ? WHERE id = ? AND routed_at IS NULL",
            (now, event_id),
        ).rowcount
        == 1
    )


def log_outcome(
    conn: sqlite3.Connection, event_id: int, route_id: int | None, outcome: str, at: float
) -> None:
    """What became of an event on a route (or on none: ``route_id`` None)."""
    conn.execute(
        "INSERT INTO notify_event_log (event_id, route_id, outcome, at) VALUES (?, ?, ?, ?)",
        (event_id, route_id, outcome, at),
    )


def severity_of(conn: sqlite3.Connection, event_id: int) -> str:
    row = conn.execute("SELECT severity FROM notify_events WHERE id = ?", (event_id,)).fetchone()
    return "info" if row is None else row[0]


def event_row(conn: sqlite3.Connection, event_id: int) -> Any:
    """(id, kind, status, severity, dedup key, server id, subject, data JSON, at)."""
    return conn.execute(
        "SELECT id, kind, status, severity, dedup_key, server_id, subject, data, at "
        "FROM notify_events WHERE id = ?",
        (event_id,),
    ).fetchone()


def event_log(
    conn: sqlite3.Connection, partner_id: int | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """Events after id ``after``, oldest first, each with what became of it per route."""
    sql = (
        "SELECT id, kind, status, severity, dedup_key, server_id, subject, at, routed_at "
        "FROM notify_events WHERE id > ?"
    )
    args: tuple[Any, ...] = (after,)
    if partner_id is not None:
        sql += " AND partner_id = ?"
        args += (partner_id,)
    rows = conn.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
    out = []
    for r in rows:
        outcomes = [
            {"route": o[0], "outcome": o[1], "at": o[2]}
            for o in conn.execute(
                "SELECT route_id, outcome, at FROM notify_event_log WHERE event_id = ? ORDER BY id",
                (r[0],),
            )
        ]
        out.append(
            {
                "id": r[0],
                "type": r[1],
                "status": r[2],
                "severity": r[3],
                "key": r[4],
                "server": r[5],
                "subject": r[6],
                "at": r[7],
                "routed_at": r[8],
                "outcomes": outcomes,
            }
        )
    return out


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Drop the routed events from before ``before`` and their log; an event an alert
    still points at (its route's latest state) stays."""
    n = conn.execute(
        "DELETE FROM notify_event_log WHERE event_id IN "
        "(SELECT id FROM notify_events WHERE at < ? AND routed_at IS NOT NULL)",
        (before,),
    ).rowcount
    n += conn.execute(
        "DELETE FROM notify_events WHERE at < ? AND routed_at IS NOT NULL "
        f"AND id NOT IN ({alerts.EVENTS_POINTED_AT})",
        (before,),
    ).rowcount
    return n

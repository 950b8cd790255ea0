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
from typing import Any

from collector.health import servers

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

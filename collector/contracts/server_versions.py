"""The software each server ran, and from when (table ``server_versions``).

The contract checks judge "is this server running a version its maintenance covers" on
the version a server reports. For today that is the version in its stored state; for a
month that is over it must be the version the server ran at that month's end, or a
server updated today would change last month's report. So each check round that runs at
the present (:func:`changes`, :func:`record`) writes a row when it sees a server's
version for the first time (from the server's enrolment: nothing earlier is known) or
changed since the last row (from the round's time: the update happened within one check
interval before it). :func:`at` answers the version in effect at an instant in the past;
servers with no row from before it keep the version of their stored state, as before the
history was kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Version = tuple[str, str]
"""(product, version)."""
CHUNK = 500
"""Server ids per query when a partner's servers are asked for."""


def latest(conn: Any) -> dict[str, Version]:
    """Each server's last recorded version."""
    rows = conn.execute(
        "SELECT v.server_id, v.product, v.version FROM server_versions v "
        "JOIN (SELECT server_id, MAX(since) AS since FROM server_versions GROUP BY server_id) m "
        "ON m.server_id = v.server_id AND m.since = v.since"
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def at(conn: Any, when: float, server_ids: Sequence[str] | None = None) -> dict[str, Version]:
    """The version each server with a recorded history ran at ``when``: its last row
    from ``when`` or before; of ``server_ids`` only, or of every server."""
    sql = (
        "SELECT v.server_id, v.product, v.version FROM server_versions v "
        "JOIN (SELECT server_id, MAX(since) AS since FROM server_versions "
        "WHERE since <= ?{scope} GROUP BY server_id) m "
        "ON m.server_id = v.server_id AND m.since = v.since"
    )
    if server_ids is None:
        rows = conn.execute(sql.format(scope=""), (when,)).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}
    out: dict[str, Version] = {}
    ids = list(server_ids)
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        scope = " AND server_id IN (" + ", ".join("?" * len(part)) + ")"
        rows = conn.execute(sql.format(scope=scope), (when, *part)).fetchall()
        out.update((r[0], (r[1], r[2])) for r in rows)
    return out


def changes(
    current: Iterable[tuple[str, float, str, str]], recorded: dict[str, Version], now: float
) -> list[tuple[str, float, str, str]]:
    """The rows to write for ``current`` (server id, enrolled at, product, version as
    stored now): a server's first version from its enrolment, a changed one from ``now``.
    A server that has not said its version yet is left out."""
    out = []
    for sid, enrolled_at, product, version in current:
        if not product and not version:
            continue
        last = recorded.get(sid)
        if last is None:
            out.append((sid, min(enrolled_at, now), product, version))
        elif last != (product, version):
            out.append((sid, now, product, version))
    return out


def record(conn: Any, rows: Sequence[tuple[str, float, str, str]]) -> None:
    """Write rows made by :func:`changes`."""
    if rows:
        conn.executemany(
            "INSERT INTO server_versions (server_id, since, product, version) VALUES (?, ?, ?, ?)",
            rows,
        )


def totals(conn: Any) -> tuple[Any, ...]:
    """What changes when a row is written: for a kept report's fingerprint."""
    row = conn.execute("SELECT COUNT(*), MAX(since) FROM server_versions").fetchone()
    return tuple(row)

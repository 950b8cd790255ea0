"""The ``reports`` table, each server's health report history: every read and prune of
it goes through these functions (the contract checks' report times, the monthly report's
fingerprint, a server's storage history) and every write (ingest's, which tells a
retried report from a new one by what :func:`insert_new` inserted) goes through these
functions, so a second database backend changes this module alone for it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from collector.storage import windows

Conn = Any
"""A DB-API connection as ``Database.read``/``write`` hand it over."""

_WINDOW = "collected_at >= ? AND collected_at <= ?"


_ROWS_CHUNK = 100
"""Report rows per insert statement (eight parameters each)."""


def insert_new(conn: Conn, rows: Sequence[tuple[object, ...]]) -> set[tuple[str, str]]:
    """Insert each row (server id, report id, seq, collected at, received at, CPU %,
    memory %, volumes) whose (server, report id) is not stored yet; the pairs inserted."""
    inserted: set[tuple[str, str]] = set()
    for start in range(0, len(rows), _ROWS_CHUNK):
        chunk = rows[start : start + _ROWS_CHUNK]
        marks = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        cur = conn.execute(
            "INSERT INTO reports (server_id, report_id, seq, collected_at, received_at, "
            f"cpu_percent, memory_percent, volumes) VALUES {marks} "
            "ON CONFLICT DO NOTHING RETURNING server_id, report_id",
            [p for row in chunk for p in row],
        )
        inserted.update((r[0], r[1]) for r in cur.fetchall())
    return inserted


def prune_received_before(conn: Conn, before: float) -> int:
    """Drop the reports received before ``before``; how many."""
    return conn.execute("DELETE FROM reports WHERE received_at < ?", (before,)).rowcount


def volumes_since(conn: Conn, server_id: str, since: float) -> list[Any]:
    """``(collected_at, volumes JSON)`` of ``server_id``'s reports from ``since``, oldest
    first."""
    return conn.execute(
        "SELECT collected_at, volumes FROM reports WHERE server_id = ? AND collected_at >= ? "
        "ORDER BY collected_at",
        (server_id, since),
    ).fetchall()


def times_in_window(
    conn: Conn, scope: Sequence[str] | None, since: float, now: float
) -> Iterable[Sequence[Any]]:
    """``(server_id, collected_at)`` of the reports within [since, now], of the servers in
    ``scope`` or of all."""
    select = "SELECT server_id, collected_at FROM reports"
    return windows.in_window(conn, select, "collected_at", scope, since, now)


def window_totals(conn: Conn, ids: Sequence[str] | None, start: float, end: float) -> list[Any]:
    """Count and sum of the report times within [start, end], of all reports (one row) or
    of the servers ``ids`` (a row per chunk of ids, through their ``(server_id,
    collected_at)`` index)."""
    if ids is None:
        sql = f"SELECT count(*), sum(collected_at) FROM reports WHERE {_WINDOW}"
        return conn.execute(sql, (start, end)).fetchall()
    sql = (
        "SELECT count(*), sum(collected_at) FROM reports "
        f"WHERE server_id IN ({{ids}}) AND {_WINDOW}"
    )
    return list(windows.per_server(conn, sql, ids, start, end))


def oldest_time(conn: Conn) -> float | None:
    """The oldest health report still stored (history is pruned), or None.

    Each server's oldest through the ``(server_id, collected_at)`` index, then the least
    of those: a plain ``MIN(collected_at)`` reads the whole index (``docs/benchmarks.md``,
    the monthly report kept). Every report is of an enrolled server, and servers are never
    deleted: the one read here that joins ``servers``."""
    r = conn.execute(
        "SELECT MIN(oldest) FROM (SELECT (SELECT MIN(r.collected_at) FROM reports r "
        "WHERE r.server_id = s.id) AS oldest FROM servers s) AS per_server"
    ).fetchone()
    return None if r is None or r[0] is None else float(r[0])

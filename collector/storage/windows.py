"""Bulk reads of a time window over a (server, time) index, for the whole fleet or some
servers: shared by the stores whose tables are read that way (backups, reports)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

CHUNK = 500
"""Server ids per ``IN (...)`` list: well under SQLite's and PostgreSQL's parameter limits."""


def per_server(conn: Any, sql: str, ids: Sequence[str], *params: object) -> Iterator[Sequence[Any]]:
    """The rows of ``sql`` for the servers ``ids``, some hundreds at a time (``{ids}`` in
    ``sql`` is where their ``IN`` list goes, before ``params``)."""
    for at in range(0, len(ids), CHUNK):
        part = ids[at : at + CHUNK]
        yield from conn.execute(sql.format(ids=", ".join("?" * len(part))), (*part, *params))


def in_window(
    conn: Any, select: str, column: str, scope: Sequence[str] | None, since: float, now: float
) -> Iterable[Sequence[Any]]:
    """The rows of ``select`` whose ``column`` is within [since, now]: of the servers in
    ``scope`` (each a range of a (server, time) index), or of all (one pass)."""
    window = f"{column} >= ? AND {column} <= ?"
    if scope is None:
        return conn.execute(f"{select} WHERE {window}", (since, now))
    sql = f"{select} WHERE server_id IN ({{ids}}) AND {window}"
    return per_server(conn, sql, scope, since, now)

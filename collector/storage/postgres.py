"""PostgreSQL behind the same :class:`~collector.storage.database.Database` interface.

The collector's repositories are synchronous functions over a connection that speaks
``execute(sql with ? placeholders, params)`` and returns rows readable by position and by
column name (``sqlite3.Row``). :class:`PgConnection` gives a psycopg 3 connection that
face, so every repository runs unchanged on both backends: placeholders become ``%s``
(a literal ``%`` is doubled), a Python ``bool`` is sent as the integer SQLite would have
stored, a NUL in text (which PostgreSQL refuses) as U+FFFD, and rows come back as
:class:`PgRow`. The group commit is the SQLite one
(:class:`~collector.storage.database.GroupCommitDatabase`): one writer connection,
each job in its own SAVEPOINT, one COMMIT per batch.

psycopg 3 (not asyncpg) because the repositories are synchronous: asyncpg would need an
async twin of each of them, and the measurement in ``docs/decisions.md`` shows no gain
for the collector's point statements that would pay for that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq

from collector.storage.database import GroupCommitDatabase
from collector.storage.migrations import MIGRATION_LOCK, apply_migrations


class PgRow(tuple[Any, ...]):
    """A row readable as ``row[0]`` and as ``row["name"]``, like ``sqlite3.Row``."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return lambda values: values
    names: dict[str, int] = {}
    for i, d in enumerate(desc):
        names.setdefault(d.name, i)  # the first of two same-named columns, as sqlite3.Row
    row_type = type("PgRow", (PgRow,), {"_names": names})

    def make(values: Sequence[Any]) -> PgRow:
        return row_type(values)

    return make


def translate(sql: str) -> str:
    """``?`` placeholders outside string literals become ``%s``; ``%`` becomes ``%%``."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


def _param(p: Any) -> Any:
    if isinstance(p, bool):
        return int(p)
    if isinstance(p, str) and "\x00" in p:
        # PostgreSQL text cannot hold NUL; SQLite can. What a client sent with one is
        # looked up (and finds nothing) or stored with U+FFFD in its place, not refused.
        return p.replace("\x00", "\ufffd")
    return p


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_param(p) for p in params)


class PgCursor:
    """What repositories use of a ``sqlite3.Cursor``."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur.description is not None else []

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._cur.fetchmany(size) if self._cur.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        if self._cur.description is None:
            return iter(())
        return iter(self._cur)


class PgConnection:
    """A psycopg connection (autocommit; transactions are explicit BEGIN/COMMIT, as the
    SQLite connections are) that takes the collector's ``?`` SQL."""

    dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        self.raw = psycopg.connect(dsn, autocommit=True, row_factory=_row_factory)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        cur = self.raw.cursor()
        if params:
            cur.execute(translate(sql), _params(params))
        else:
            cur.execute(sql.replace("%", "%%") if "%" in sql else sql, None)
        return PgCursor(cur)

    def executemany(self, sql: str, seq: Any) -> PgCursor:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), [_params(p) for p in seq])
        return PgCursor(cur)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


class PostgresDatabase(GroupCommitDatabase):
    """PostgreSQL behind the :class:`Database` interface; ``dsn`` is a ``postgresql://`` URL."""

    dialect = "postgresql"

    def __init__(
        self, dsn: str, *, max_batch: int = 512, readers: int = 2, migrate: bool = True
    ) -> None:
        self.dsn = dsn
        conn = self._connect()
        try:
            if migrate:
                # Several collectors starting at once (``serve --workers``, machines):
                # one migrates, the others wait and find nothing left to do. The lock is
                # the connection's, so a collector killed while migrating releases it.
                conn.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                apply_migrations(conn, self.dialect)
        finally:
            conn.close()
        super().__init__(max_batch=max_batch, readers=readers)

    def _connect(self) -> PgConnection:
        return PgConnection(self.dsn)

    def _read_only(self, conn: PgConnection) -> None:
        conn.execute("SET default_transaction_read_only = on")

    def _begin(self, conn: PgConnection) -> None:
        conn.execute("BEGIN")

    def _begin_at_once(self, conn: PgConnection) -> bool:
        """BEGIN takes no lock in PostgreSQL: one round trip, never a wait."""
        self._begin(conn)
        return True

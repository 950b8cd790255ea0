"""Moving a collector's data from one database to another (``vigil-collector migrate-storage``).

Every table the migrations made is copied row for row, parents before children (foreign
keys), in one transaction on the target: it holds all of the source or nothing. The
source is read in one read transaction, so what is copied is one consistent moment of a
running collector (stop it first, or whatever it stores afterwards stays behind). Rows
keep their keys, servers their public keys and identities: no agent re-enrolls; agents
only open a new session, as after any restart. Identity counters on PostgreSQL are moved
past the copied ids. At the end the rows of every table are counted on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.storage.database import Database

BATCH = 1000


class TransferError(RuntimeError):
    """The target cannot take the data (not empty, another schema) or the counts differ."""


@dataclass
class TransferReport:
    tables: dict[str, int] = field(default_factory=dict)
    """Rows per table in the source (and, after a transfer, in the target)."""
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)


def _tables(conn: Any, dialect: str) -> list[str]:
    if dialect == "sqlite":
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
    return sorted(r[0] for r in rows if r[0] != "schema_migrations")


def _parents(conn: Any, table: str) -> set[str]:
    """The tables ``table`` has foreign keys to (read from the SQLite source)."""
    return {r[2] for r in conn.execute(f'PRAGMA foreign_key_list("{table}")').fetchall()}


def _ordered(tables: list[str], parents: dict[str, set[str]]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()

    def visit(t: str, path: tuple[str, ...]) -> None:
        if t in seen or t in path:
            return
        for p in sorted(parents.get(t, set())):
            if p in parents:
                visit(p, (*path, t))
        seen.add(t)
        out.append(t)

    for t in tables:
        visit(t, ())
    return out


def _columns(conn: Any, table: str) -> list[str]:
    """The columns of ``table`` in the SQLite source."""
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")').fetchall()]


def _count(conn: Any, table: str) -> int:
    return int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])


def _schema_table(conn: Any) -> list[str]:
    found = conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
    ).fetchall()
    return [r[0] for r in found]


def _versions(conn: Any) -> set[int]:
    return {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}


def plan(source: Database, target: Database) -> tuple[list[str], TransferReport]:
    """The tables in copy order and their source row counts; refuse a target that is not
    empty or not at the source's schema version."""
    if source.dialect != "sqlite":
        raise TransferError("the source must be a SQLite database (sqlite:///path)")

    def read_source(conn: Any) -> tuple[list[str], TransferReport, set[int]]:
        tables = _tables(conn, "sqlite")
        order = _ordered(tables, {t: _parents(conn, t) for t in tables})
        return order, TransferReport({t: _count(conn, t) for t in order}), _versions(conn)

    order, report, versions = source.read_sync(read_source)

    def check_target(conn: Any) -> None:
        if "schema_migrations" not in _tables(conn, target.dialect) + _schema_table(conn):
            return  # a new, empty database (a dry run does not create the schema)
        if _versions(conn) != versions:
            raise TransferError("source and target are at different schema versions")
        missing = set(order) - set(_tables(conn, target.dialect))
        if missing:
            raise TransferError(f"the target has no table {sorted(missing)[0]}")
        full = [t for t in order if _count(conn, t)]
        if full:
            raise TransferError(f"the target is not empty (table {full[0]} has rows)")

    target.read_sync(check_target)
    return order, report


def transfer(
    source: Database,
    target: Database,
    order: list[str],
    progress: Callable[[str, int], None] = lambda table, rows: None,
) -> TransferReport:
    """Copy every table in ``order``; count both sides; raise if a count differs.

    The source counts are taken in the same read transaction as the copy, so a collector
    still writing to the source does not make them differ."""
    src: dict[str, int] = {}

    def copy(tconn: Any) -> None:
        def each_table(sconn: Any) -> None:
            for table in order:
                src[table] = _count(sconn, table)
                _copy_table(sconn, tconn, table, target.dialect)
                progress(table, src[table])

        source.read_sync(each_table)

    target.write_sync(copy)
    report = TransferReport()
    dst = target.read_sync(lambda c: {t: _count(c, t) for t in order})
    report.tables = src
    report.mismatched = {t: (src[t], dst[t]) for t in order if src[t] != dst[t]}
    if report.mismatched:
        t, (a, b) = next(iter(report.mismatched.items()))
        raise TransferError(f"row counts differ after the copy: {t} has {a} rows, target {b}")
    return report


def _copy_table(sconn: Any, tconn: Any, table: str, dialect: str) -> None:
    cols = _columns(sconn, table)
    names = ", ".join(f'"{c}"' for c in cols)
    insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" for _ in cols)})'
    cur = sconn.execute(f'SELECT {names} FROM "{table}"')
    while True:
        rows = cur.fetchmany(BATCH)
        if not rows:
            break
        tconn.executemany(insert, [tuple(r) for r in rows])
    if dialect == "postgresql" and "id" in cols:
        seq = tconn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()[0]
        if seq:
            tconn.execute(
                f'SELECT setval(?, (SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"), false)',
                (seq,),
            )

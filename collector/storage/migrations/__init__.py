"""Schema migrations: ``NNNN_<name>.sql`` files applied once each, in numeric order.

A file ``NNNN_<name>.<dialect>.sql`` beside a plain one replaces it for that dialect.
Applied versions are recorded in ``schema_migrations``; a database that was migrated
by a newer collector (an unknown version is recorded) is refused rather than guessed at.
"""

from __future__ import annotations

import re
import sqlite3
import time
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgresql))?\.sql$")


class MigrationError(RuntimeError):
    pass


def available(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration for ``dialect``, in order."""
    chosen: dict[int, tuple[str, str, bool]] = {}
    for entry in resources.files(__package__).iterdir():
        m = _NAME.match(entry.name)
        if not m:
            continue
        version, name, only = int(m.group(1)), m.group(2), m.group(3)
        if only and only != dialect:
            continue
        specific = only is not None
        if version in chosen and chosen[version][2] and not specific:
            continue
        if version in chosen and chosen[version][0] != name:
            raise MigrationError(
                f"two migrations numbered {version:04d}: {chosen[version][0]}, {name}"
            )
        chosen[version] = (name, entry.read_text(encoding="utf-8"), specific)
    return [(v, n, sql) for v, (n, sql, _) in sorted(chosen.items())]


def _statements(script: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def apply_migrations(conn: sqlite3.Connection, dialect: str = "sqlite") -> list[int]:
    """Apply what is missing, each migration in its own transaction; return the versions."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    known = {v for v, _, _ in available(dialect)}
    applied_now: list[int] = []
    for version, name, sql in available(dialect):
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            unknown = done - known
            if unknown:
                raise MigrationError(
                    f"database has schema versions {sorted(unknown)} this collector does not know; "
                    "it was migrated by a newer version"
                )
            if version in done:
                conn.execute("COMMIT")
                continue
            for stmt in _statements(sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
            conn.execute("COMMIT")
            applied_now.append(version)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied_now

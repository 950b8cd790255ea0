"""Storage behind one interface: SQLite (WAL) embedded, PostgreSQL at scale."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

from collector.storage.database import Database, SQLiteDatabase

__all__ = [
    "Database",
    "SQLiteDatabase",
    "StorageUnavailable",
    "integrity_errors",
    "open_database",
    "open_url",
    "storage_errors",
]


def storage_errors() -> tuple[type[Exception], ...]:
    """What a backend raises when it cannot do what was asked (disk full, a broken
    connection, a constraint): the HTTP layer answers 503 to these, never 500.

    Asked for where the exception is caught (``except storage_errors():``), not kept in
    a constant: PostgreSQL's driver is imported only by a process that opens PostgreSQL
    (it is a sixth of an admin command's start), and one that has not loaded it cannot
    meet its errors."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if pg is None else (sqlite3.Error, pg.Error)


def integrity_errors() -> tuple[type[Exception], ...]:
    """A unique or foreign-key constraint refused a write, whatever the backend (asked
    for where caught, as :func:`storage_errors`)."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.IntegrityError,) if pg is None else (sqlite3.IntegrityError, pg.IntegrityError)


def open_database(config: Any) -> Database:
    """Open the database a collector configuration names (``config.storage``)."""
    storage = config.storage
    if storage.kind == "sqlite":
        return SQLiteDatabase(Path(storage.path), synchronous=storage.sqlite_synchronous)
    if storage.kind == "postgresql":
        try:
            from collector.storage.postgres import PostgresDatabase
        except ImportError as exc:
            raise StorageUnavailable(
                "PostgreSQL storage needs psycopg: pip install 'vigil[collector,postgres]'"
            ) from exc
        return PostgresDatabase(storage.dsn)
    raise StorageUnavailable(f"storage kind {storage.kind!r} is not available in this build")


def open_url(url: str, *, create: bool = True) -> Database:
    """Open the database a storage URL names: ``sqlite:///path`` or ``postgresql://…``.
    With ``create=False`` a SQLite file must exist and a PostgreSQL schema is not made."""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        path = Path(url[len("sqlite://") :])
        if not create and not path.exists():
            raise StorageUnavailable(f"no SQLite database at {path}")
        return SQLiteDatabase(path)
    if url.startswith(("postgresql://", "postgres://")):
        from collector.storage.postgres import PostgresDatabase

        return PostgresDatabase(url, migrate=create)
    raise StorageUnavailable(f"not a storage URL: {url!r} (sqlite:///path or postgresql://…)")


class StorageUnavailable(RuntimeError):
    """The configured storage cannot be opened by this build."""

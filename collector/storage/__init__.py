"""Storage behind one interface: SQLite (WAL) embedded, PostgreSQL at scale."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from collector.storage.database import Database, SQLiteDatabase

__all__ = [
    "INTEGRITY_ERRORS",
    "STORAGE_ERRORS",
    "Database",
    "SQLiteDatabase",
    "StorageUnavailable",
    "open_database",
    "open_url",
]

STORAGE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)
"""What a backend raises when it cannot do what was asked (disk full, a broken
connection, a constraint): the HTTP layer answers 503 to these, never 500."""
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
"""A unique or foreign-key constraint refused a write, whatever the backend."""

try:  # PostgreSQL support is the optional ``postgres`` extra
    import psycopg
except ImportError:  # pragma: no cover - the embedded build
    pass
else:
    STORAGE_ERRORS += (psycopg.Error,)
    INTEGRITY_ERRORS += (psycopg.IntegrityError,)


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
                "PostgreSQL storage needs psycopg: pip install 'vigil[postgres]'"
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

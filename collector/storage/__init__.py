"""Storage behind one interface: SQLite (WAL) embedded, PostgreSQL at scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.storage.database import Database, SQLiteDatabase

__all__ = ["Database", "SQLiteDatabase", "open_database"]


def open_database(config: Any) -> Database:
    """Open the database a collector configuration names (``config.storage``)."""
    storage = config.storage
    if storage.kind == "sqlite":
        return SQLiteDatabase(Path(storage.path), synchronous=storage.sqlite_synchronous)
    raise ValueError(f"storage kind {storage.kind!r} is not available in this build")

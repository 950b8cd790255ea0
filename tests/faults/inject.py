"""Faults put on a running collector from outside: a disk filled up, a table renamed
away under it (and back)."""

from __future__ import annotations

import os
from pathlib import Path

from harness.database import collector_sql


def fill(directory: Path, leave: int) -> Path:
    """Fill the filesystem of ``directory`` until about ``leave`` bytes are free; the
    filler file is returned (unlink it to give the space back)."""
    filler = directory / "filler"
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(filler, "ab") as fh:
        left = max(0, free - leave)
        block = b"\xa5" * (1024 * 1024)
        while left > 0:
            n = min(left, len(block))
            try:
                fh.write(block[:n])
                fh.flush()
            except OSError:
                break
            left -= n
    return filler


def rename(db: Path, old: str, new: str) -> None:
    """Rename a table of the collector's database (another process, its own connection)."""
    with collector_sql(db.parent) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")

"""A full disk for the fault tests: fill a (small, test-mounted) file system to the last byte."""

from __future__ import annotations

import errno
from pathlib import Path


def fill_disk(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system is full; delete it to free."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    fh.write(b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler

"""The collector's files are its own: created readable by its user only.

The database (with its WAL and shared-memory files), staged uploads and stored backups
hold health data and ciphertext; nothing in them is a usable credential (see
``docs/security.md``), but there is no reason for another local user to read them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def files_private() -> Iterator[None]:
    """While inside, this process creates files 0600 and directories 0700; the umask it
    had is restored after, so a command run inside another program (a test calling
    ``main()``) leaves that program's umask as it found it."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; make ``path`` itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(PermissionError):  # not ours (a shared /tmp-like parent)
        os.chmod(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing and make it 0600, before anything is written to it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def private_sqlite_files(db_path: Path) -> None:
    """The database file, then any ``-wal``/``-shm``/``-journal`` beside it, 0600."""
    private_file(db_path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = db_path.with_name(db_path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(side, 0o600)

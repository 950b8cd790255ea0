"""Key files the collector makes for itself: 32 random bytes, 0600, made exactly once.

Several collector processes may start at once on one data directory (``serve
--workers``); each must end up reading the same key, never a file another process has
made but not yet written. So a new key is written to a private temporary file and
linked into place, which fails for every process but the first.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def make_once(path: Path, size: int = 32) -> None:
    """Write ``size`` random bytes to ``path`` unless a file is there already."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

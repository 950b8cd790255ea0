"""One collector per data directory: a lock file that names the process holding it.

Two collectors on one SQLite database would both accept reports and both run the
scheduled work; the second is refused at start with the first one's pid. The lock is an
``flock`` on ``collector.lock`` in the data directory, so it is released by the kernel
when the holder dies (a kill -9 leaves no stale lock to clean by hand).

On PostgreSQL there is no such lock: any number of collector processes (``serve
--workers N``, several machines) serve one database, sharing what would otherwise be
a process's own (agent sessions under the session key file; replay nonces and the
leases of scheduled tasks in the database). Only the schema migrations are serialised,
under an advisory lock (``collector.storage.postgres``).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO


class AlreadyRunning(Exception):
    """Another collector holds the data directory."""


def hold(data_dir: Path) -> IO[str]:
    """Take the data directory's lock for this process; keep the returned file open."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "collector.lock"
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise AlreadyRunning(
            f"another collector (pid {holder}) is serving {data_dir}; stop it first, "
            "or give this one its own --data DIR"
        ) from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
    except OSError:  # a full disk: the lock holds all the same, only its pid is not shown
        pass
    return fh

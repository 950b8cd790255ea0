"""One collector per data directory: a lock file that names the process holding it.

Two collectors on one SQLite database would both accept reports and both run the
scheduled work; the second is refused at start with the first one's pid. The lock is an
``flock`` on ``collector.lock`` in the data directory, so it is released by the kernel
when the holder dies (a kill -9 leaves no stale lock to clean by hand).

On PostgreSQL the data directory does not name the database, so the lock is a session
advisory lock in the database itself (:func:`hold_database`), released by the server when
the holder's connection ends, however it ends. Several collectors on one PostgreSQL are
planned; until they share sessions and scheduled work, the second is refused.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import IO, Any


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


_DATABASE_LOCK = 0x76676C63  # "vglc": the advisory lock key of a serving collector


class Held:
    """A lock on a PostgreSQL database, held by a connection of its own."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def close(self) -> None:
        self._conn.close()


def hold_database(dsn: str) -> Held:
    """Take the database's serving lock for this process; keep the returned object.

    Raises :class:`AlreadyRunning` naming the holder's pid (the storage errors of the
    driver when the database cannot be reached)."""
    import psycopg

    conn = psycopg.connect(
        dsn, autocommit=True, application_name=f"vigil-collector pid {os.getpid()}"
    )
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_DATABASE_LOCK,)).fetchone()
    if row and row[0]:
        return Held(conn)
    holder = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (_DATABASE_LOCK,),
    ).fetchone()
    conn.close()
    who = holder[0].removeprefix("vigil-collector ") if holder else "pid unknown"
    raise AlreadyRunning(
        f"another collector ({who}) is serving this PostgreSQL database; stop it first "
        "(several collectors on one database are not supported yet)"
    )

"""One daemon per state directory: two would share a spool and hand out every sequence
number twice.

``vigil-agent run`` holds an exclusive lock (``agent.platform.lock_exclusive``) on
``agent.lock`` in the state directory for as long as it runs; the kernel releases it
when the process ends, however it ends, so a stale file never blocks a start. The file
holds the holder's pid so that a second start can say which process is in the way.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent import platform

LOCK_FILE = "agent.lock"


class AlreadyRunning(RuntimeError):
    def __init__(self, state_dir: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another agent ({who}) is already running with the state directory {state_dir}; "
            "stop it first ('systemctl stop vigil-agent')"
        )
        self.pid = pid


def hold_instance_lock(state_dir: Path) -> int:
    """Take the lock or raise :class:`AlreadyRunning`; returns the descriptor to keep open."""
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if not platform.lock_exclusive(fd):
        try:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        finally:
            os.close(fd)
        raise AlreadyRunning(state_dir, int(text) if text.isdigit() else None)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full disk: the lock holds all the same, only the pid is not written
    return fd


def lock_holder(state_dir: Path) -> int | None:
    """The pid of the daemon holding the lock, or None when no daemon holds it."""
    path = state_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if platform.lock_is_held(fd):
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        return None
    finally:
        os.close(fd)

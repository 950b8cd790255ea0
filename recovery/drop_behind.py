"""Restored bytes leave the page cache once the kernel has written them.

A restore writes the whole tree once and reads none of it back. Left in the page cache,
every written page is a page the kernel had to hand out fresh, and on a virtual machine
whose free memory the host takes back (a balloon, free page reporting) taking such a page
costs far more than copying into it: writing a 780 MiB file cost about 7 s of system CPU
on the bench's machine, most of a restore (``docs/benchmarks.md``). Dropping what was
written a few megabytes back, once it is on disk, lets the kernel hand the same pages out
again. ``POSIX_FADV_DONTNEED`` starts the writeback of dirty pages and drops only clean
ones: nothing unwritten is lost, and where the call is missing or refused nothing changes.
"""

from __future__ import annotations

import contextlib
import os

STEP = 8 << 20
"""Bytes written between two calls."""
BEHIND = 4 * STEP
"""How far back from the newest written byte the dropping reaches (the writeback of a step
started at the previous call has long finished when the next one comes)."""


class DropBehind:
    """``written(n)`` after each write of ``n`` bytes to ``fd`` (written in order from
    offset 0); every ``STEP`` bytes it starts the writeback of the new bytes and drops the
    older ones from the page cache."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.end = 0
        self._marked = 0

    def written(self, n: int) -> None:
        self.end += n
        if self.end - self._marked >= STEP:
            advise(self.fd, self._marked - BEHIND, self.end)
            self._marked = self.end


def advise(fd: int, start: int, end: int) -> None:
    """``POSIX_FADV_DONTNEED`` on ``[start, end)`` (``start`` below 0: from 0)."""
    start = max(0, start)
    if end > start:
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)

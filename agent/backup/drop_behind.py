"""The archive file leaves the page cache behind its writer, once on disk.

The agent writes every backup archive once and reads it back only to resume an upload.
Left in the page cache, a 1 GiB archive pushes out pages the recording server uses, and
every written page is one the kernel hands out fresh: on a virtual machine whose free
memory the host takes back (a balloon, free page reporting) taking such a page costs far
more than copying into it (``docs/benchmarks.md``, "Pages the kernel hands out fresh").
Every ``STEP`` bytes the writeback of the new bytes starts and what lies ``BEHIND`` them,
written by then, is dropped, so the kernel hands the same pages out again.
``POSIX_FADV_DONTNEED`` drops only clean pages: nothing unwritten is lost, and where the
call is missing or refused nothing changes.
"""

from __future__ import annotations

import contextlib
import os
from typing import BinaryIO

STEP = 8 << 20
BEHIND = 4 * STEP


class DropBehindWriter:
    """A write-only file over an unbuffered one (``open(path, "wb", buffering=0)``),
    written in order from offset 0."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._fd = raw.fileno()
        self.end = 0
        self._marked = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            view = view[self._raw.write(view) or 0 :]
        self.end += size
        if self.end - self._marked >= STEP:
            start = max(0, self._marked - BEHIND)
            with contextlib.suppress(AttributeError, OSError):
                os.posix_fadvise(self._fd, start, self.end - start, os.POSIX_FADV_DONTNEED)
            self._marked = self.end
        return size

    def flush(self) -> None:
        """Nothing waits here: every write went to the file."""

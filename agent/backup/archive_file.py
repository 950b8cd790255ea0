"""The archive file, written around the page cache by a thread of its own.

The agent writes every backup archive once and reads it back only to resume an upload.
Through the page cache each byte costs a copy into a page the kernel must first find
(on a virtual machine whose free memory the host takes back, finding it costs more than
the copy), then writeback, then dropping the page again so a 1 GiB archive does not push
out pages the recording server uses. With ``O_DIRECT`` the disk takes the bytes from the
agent's own buffer: 256 MiB cost 0.05 s of CPU against 0.21 s written and dropped behind
(``bench/page_cache.py``; ``docs/benchmarks.md``, "Less work per byte").

``ArchiveFile.write_chunk`` takes whole chunks in order (``ChunkTee`` cuts them). The
``backup-file`` thread copies each, a megabyte at a time, into one page-aligned buffer
(``O_DIRECT`` wants aligned memory; the chunk itself, shared with the upload, is not) and
writes it from there while the next chunk fills. That thread waits on the disk, it does
not compute: it is not counted against ``[backup] threads``. At most one chunk waits for
it. The part of the last chunk after its last whole block goes through the page cache.

Where ``O_DIRECT`` is refused (at open or at the first write: a file system without it),
every chunk is written the usual way and dropped behind (``POSIX_FADV_DONTNEED`` once on
disk), as before. A write error (a full disk) is raised by the next ``write_chunk`` or by
``close()``; nothing after it is written.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import queue
import threading
from pathlib import Path

BLOCK = 4096
"""Offsets and lengths written with ``O_DIRECT`` are multiples of this (a page: what
every file system and device asks at most)."""
BOUNCE = 1 << 20
"""The page-aligned buffer each chunk is copied into, a piece at a time, to be written."""
BEHIND = 32 << 20
"""On the fallback path, each chunk's write asks the kernel to write back and drop from
the page cache everything from this far before the previous chunk's end (by then on
disk) to its own end."""
_DIRECT = getattr(os, "O_DIRECT", 0)


class ArchiveFile:
    """Write-only, sequential: ``write_chunk(offset, data)`` for each chunk in turn, every
    one but the last a multiple of :data:`BLOCK` long; then ``close()``."""

    def __init__(self, path: Path, direct: bool = True) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._direct_fd = -1
        if direct and _DIRECT:
            with contextlib.suppress(OSError):
                self._direct_fd = os.open(path, os.O_WRONLY | _DIRECT)
        self._bounce = mmap.mmap(-1, BOUNCE) if self._direct_fd >= 0 else None
        self._queue: queue.Queue[tuple[int, bytes | bytearray | memoryview] | None]
        self._queue = queue.Queue(maxsize=1)
        self._error: OSError | None = None
        self._dropped = 0
        self.end = 0
        """Bytes handed over so far (the file's size once ``close()`` returns)."""
        self._thread = threading.Thread(target=self._run, name="backup-file", daemon=True)
        self._thread.start()

    @property
    def direct(self) -> bool:
        """Whether chunks still go around the page cache (False after a refusal)."""
        return self._direct_fd >= 0

    def write_chunk(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` (not changed afterwards by the caller) for ``offset``."""
        if offset != self.end:
            raise ValueError(f"chunk at {offset}, the file ends at {self.end}")
        if self.end % BLOCK:
            raise ValueError(f"a chunk after one that is not a multiple of {BLOCK} long")
        self._raise_error()
        self.end += len(data)
        self._queue.put((offset, data))

    def close(self) -> None:
        """Wait for every chunk to be written; raise the first write error (once)."""
        if self._fd < 0:
            return
        self._queue.put(None)
        self._thread.join()
        for fd in (self._direct_fd, self._fd):
            if fd >= 0:
                os.close(fd)
        self._direct_fd = self._fd = -1
        if self._bounce is not None:
            self._bounce.close()
            self._bounce = None
        self._raise_error()

    def __enter__(self) -> ArchiveFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # the error already on its way says what went wrong first
            with contextlib.suppress(OSError):
                self.close()

    # --- the backup-file thread ---------------------------------------------------------

    def _raise_error(self) -> None:
        if self._error is not None:
            raise OSError(self._error.errno, f"{self.path}: {self._error.strerror}")

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the writer learns of the error at its next call
            offset, data = item
            try:
                self._write(offset, memoryview(data).cast("B"))
            except OSError as exc:
                self._error = exc
            except Exception as exc:  # never a silent stop that leaves the writer waiting
                self._error = OSError(errno.EIO, f"the archive file's writer failed: {exc!r}")

    def _write(self, offset: int, view: memoryview) -> None:
        whole = len(view) - len(view) % BLOCK
        done = 0
        while self._bounce is not None and done < whole:
            step = min(BOUNCE, whole - done)
            self._bounce[:step] = view[done : done + step]
            try:
                with memoryview(self._bounce)[:step] as page_aligned:
                    if os.pwrite(self._direct_fd, page_aligned, offset + done) != step:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:
                if exc.errno != errno.EINVAL or offset + done:
                    raise
                # refused at the first write: the file system takes no O_DIRECT
                os.close(self._direct_fd)
                self._direct_fd = -1
                self._bounce.close()
                self._bounce = None
                break
            done += step
        if done < len(view):
            _write_all(self._fd, view[done:], offset + done)
            self._drop_behind(offset + len(view))

    def _drop_behind(self, end: int) -> None:
        if self._direct_fd >= 0:
            return  # only the tail went through the page cache
        # DONTNEED starts the writeback of what is dirty and drops what is clean: what
        # the calls before asked to write back is dropped now
        start = max(0, self._dropped - BEHIND)
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(self._fd, start, end - start, os.POSIX_FADV_DONTNEED)
        self._dropped = end


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[n:], offset + n

"""A large restored file, written around the page cache by a thread of its own.

A restore writes every file once and reads none of it back. Through the page cache each
byte costs a copy into a page the kernel must first find, then writeback, then dropping
the page again (``recovery.drop_behind``): 0.21 s of system CPU for 256 MiB on the
bench's machine, against 0.05 s with ``O_DIRECT``, where the disk takes the bytes from
the writer's own buffer (``bench/page_cache.py``; ``docs/benchmarks.md``, "Less work
per byte"). And that CPU was the restore's own thread, the one that also parses the tar
stream and hashes every file.

``write`` copies each piece into one of two page-aligned buffers of :data:`BUFFER` bytes
(``O_DIRECT`` wants aligned memory; the decompressed stream is not) and hands each full
one to the ``restore-file`` thread, which writes it while the other fills. The part
after the last whole block is written through the page cache by ``close()``. Where the
file system refuses ``O_DIRECT`` (at ``fcntl`` or at the first write), the same bytes
go through the page cache and are dropped behind the writer, as before. A write error
(a full disk) is raised by the next ``write`` or by ``close()``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import queue
import threading

from recovery.drop_behind import DropBehind

BLOCK = 4096
"""Offsets and lengths written with ``O_DIRECT`` are multiples of this."""
BUFFER = 1 << 20
_DIRECT = getattr(os, "O_DIRECT", 0)


class DirectFile:
    """``write(data)`` in order from offset 0 to the open, empty, regular file ``fd``
    (which stays the caller's to close), then ``close()``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.direct = False
        if _DIRECT:
            with contextlib.suppress(OSError):
                flags = fcntl.fcntl(fd, fcntl.F_GETFL)
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | _DIRECT)
                self.direct = True
        self._dropped = DropBehind(fd)
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        for _ in range(2):
            self._free.put(mmap.mmap(-1, BUFFER))
        self._full: queue.Queue[tuple[mmap.mmap, int, int] | None] = queue.Queue()
        self._buf = self._free.get()
        self._fill = 0
        self._offset = 0
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="restore-file", daemon=True)
        self._thread.start()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        view = memoryview(data).cast("B")
        while view:
            take = min(len(view), BUFFER - self._fill)
            self._buf[self._fill : self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == BUFFER:
                self._hand_over()
                self._buf = self._free.get()

    def close(self) -> None:
        """Write what is left and wait for every write; raise the first error."""
        if self._fill:
            self._hand_over()
        else:
            self._free.put(self._buf)
        self._full.put(None)
        self._thread.join()
        while not self._free.empty():
            with contextlib.suppress(BufferError):  # still viewed after an error: GC frees it
                self._free.get().close()
        if self._error is not None:
            raise self._error

    def _hand_over(self) -> None:
        self._full.put((self._buf, self._offset, self._fill))
        self._offset += self._fill
        self._fill = 0

    # --- the restore-file thread --------------------------------------------------------

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            buf, offset, size = item
            try:
                if self._error is None:
                    self._write(buf, offset, size)
            except OSError as exc:
                self._error = exc
            except Exception as exc:  # never a silent stop that leaves the writer waiting
                self._error = OSError(errno.EIO, f"the restored file's writer failed: {exc!r}")
            finally:
                self._free.put(buf)

    def _write(self, buf: mmap.mmap, offset: int, size: int) -> None:
        whole = size - size % BLOCK if self.direct else 0
        if whole:
            try:
                with memoryview(buf)[:whole] as page_aligned:
                    if os.pwrite(self.fd, page_aligned, offset) != whole:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:
                if exc.errno != errno.EINVAL or offset:
                    raise
                self._buffered()  # refused at the first write: no O_DIRECT here
                whole = 0
        if whole < size:
            if self.direct:
                self._buffered()  # the tail: through the page cache
            with memoryview(buf)[whole:size] as rest:
                view, at = rest, offset + whole
                while view:
                    n = os.pwrite(self.fd, view, at)
                    if n <= 0:  # never loop on a write that takes nothing
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    view, at = view[n:], at + n
            self._dropped.written(size - whole)

    def _buffered(self) -> None:
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags & ~_DIRECT)
        self.direct = False

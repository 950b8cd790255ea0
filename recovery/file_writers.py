"""Restored files written by a small pool of threads while the tar stream is parsed: the
way a restore writes its small files where ``fork`` is missing (elsewhere a process of their
own does, ``recovery.writer_process``, which shares ``Writers``, ``write_file`` and the
batch sizes below).

Creating a file costs little CPU but can wait a long time in the kernel (journal,
allocation; a shared disk makes every ``open(O_CREAT)`` wait its turn): one file after the
other, a restore of 20,000 small files spends most of its time waiting. The reading
thread (``recovery.extract``) still checks every member and makes every directory in tar
order; a worker hashes a small file (``hashed``: the SHA-256 goes back into the reader's
record of the member, checked against the manifest after ``finish``) and writes its
bytes, owner and mode. Hashing there took a third of the reading thread's time off it in a
restore of 20,000 small files (``docs/benchmarks.md``). Large files are hashed and written
by the reading thread as they stream (they do not fit in memory).

Files go to the workers in batches (``BATCH_FILES`` files or ``BATCH_BYTES``, whichever
comes first): handing each small file over on its own woke a worker, and made it and the
reader trade the GIL, once per file; with 200,000 files the context switches took a
sixth of the restore's CPU (``docs/benchmarks.md``).

Memory is bounded: at most ``max_bytes`` of file contents wait for a worker (the batch
being filled included), then the reader hands over what it holds and waits. The first
error a worker meets is raised in the reader's thread at its next ``write`` or at
``finish``; after an error no further file is written.
"""

from __future__ import annotations

import abc
import collections
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

WORKERS = 4
"""Threads writing files: they mostly wait in the kernel, so more than the cores pays."""
MAX_BYTES = 8 << 20
"""File contents waiting for a worker, at most. With the hashing on the workers the queue
runs fuller: 16 MiB made the 1 GiB restore's peak 69 MiB, 8 MiB 61 MiB, equally fast."""
BATCH_FILES = 32
BATCH_BYTES = 512 << 10

Hashed = Callable[[str], None] | None
"""Told the SHA-256 of a written file's contents, in hex (``write``'s ``hashed``)."""
_Job = tuple[str | Path, bytes, int, tuple[int, int] | None, Hashed]


class Writers(abc.ABC):
    """The two ways of writing a restore's small files (``FileWriters`` here,
    ``recovery.writer_process.WriterProcess``): ``write``, ``finish``, ``close``; the first
    error kept and raised; ``close`` on leaving a ``with``."""

    _error: BaseException | None = None

    @abc.abstractmethod
    def write(
        self,
        path: str | Path,
        data: bytes,
        mode: int,
        owner: tuple[int, int] | None,
        hashed: Hashed = None,
    ) -> None: ...

    @abc.abstractmethod
    def finish(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


class FileWriters(Writers):
    """``write(path, data, mode, owner)`` from the reading thread; ``finish()`` waits
    until every file is on disk (or raises the first error); ``close()`` always stops the
    workers, written or not."""

    def __init__(self, workers: int = WORKERS, max_bytes: int = MAX_BYTES) -> None:
        self._jobs: collections.deque[tuple[list[_Job], int]] = collections.deque()
        """Batches handed over: their files and bytes."""
        self._batch: list[_Job] = []
        self._batch_bytes = 0
        """The batch the reader fills (its bytes are counted in ``_pending_bytes``)."""
        lock = threading.Lock()
        self._work = threading.Condition(lock)
        """Workers wait here for a job: one is woken per job (waking all four for every
        small file cost more than writing it)."""
        self._room = threading.Condition(lock)
        """The reader waits here for room in the queue, or for the last file (``finish``)."""
        self._pending_bytes = 0
        self._busy = 0
        self._max_bytes = max_bytes
        self._error: BaseException | None = None
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, name=f"restore-writer-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def write(
        self,
        path: str | Path,
        data: bytes,
        mode: int,
        owner: tuple[int, int] | None,
        hashed: Hashed = None,
    ) -> None:
        """Create ``path`` (it must not exist) holding ``data``, with ``mode`` and, when
        given, ``owner`` (uid, gid); when ``hashed`` is given, call it (on a worker) with
        the SHA-256 of ``data`` in hex before the file is written. Waits while
        ``max_bytes`` are queued."""
        self._raise_if_failed()
        if self._no_room_for(len(data)):
            self._hand_over()
            with self._room:
                while self._error is None and self._no_room_for(len(data)):
                    self._room.wait()
                self._raise_if_failed()
        with self._room:
            self._pending_bytes += len(data)
        self._batch.append((path, data, mode, owner, hashed))
        self._batch_bytes += len(data)
        if len(self._batch) >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._hand_over()

    def _no_room_for(self, n: int) -> bool:
        """``n`` more bytes would pass the bound (a file larger than it passes alone)."""
        return bool(self._pending_bytes) and self._pending_bytes + n > self._max_bytes

    def _hand_over(self) -> None:
        """The batch being filled, to the workers."""
        if self._batch:
            with self._work:
                self._jobs.append((self._batch, self._batch_bytes))
                self._work.notify()
            self._batch, self._batch_bytes = [], 0

    def finish(self) -> None:
        """Wait for every queued file; raise the first error a worker met."""
        self._hand_over()
        with self._room:
            while (self._jobs or self._busy) and self._error is None:
                self._room.wait()
            self._raise_if_failed()

    def close(self) -> None:
        with self._work:
            self._closing = True
            self._jobs.clear()
            self._batch = []
            self._work.notify_all()
        for t in self._threads:
            t.join()

    def _run(self) -> None:
        while True:
            with self._work:
                while not self._jobs and not self._closing:
                    self._work.wait()
                if self._closing:
                    return
                batch, size = self._jobs.popleft()
                self._busy += 1
            try:
                for path, data, mode, owner, hashed in batch:
                    if self._error is not None:
                        break
                    if hashed is not None:
                        hashed(hashlib.sha256(data).hexdigest())
                    write_file(path, data, mode, owner)
            except BaseException as exc:  # handed to the reading thread
                with self._work:
                    if self._error is None:
                        self._error = exc
            finally:
                with self._work:
                    self._busy -= 1
                    self._pending_bytes -= size
                    self._room.notify()


def process_umask() -> int | None:
    """The process's umask as Linux reports it (``None`` where it cannot be read without
    changing it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


_UMASK = process_umask()


def write_file(
    path: str | Path, data: bytes | memoryview, mode: int, owner: tuple[int, int] | None
) -> None:
    """Create ``path`` exclusively (never through a symlink) with ``data``, then its owner
    and mode on the open file. The mode is given at creation when the umask leaves it whole
    and it has no setuid/setgid bit (which ``fchown`` clears): one system call less a file.
    The restore's directory is private (0700) until it is renamed into place."""
    at_create = _UMASK is not None and not mode & _UMASK and not (owner and mode & 0o6000)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(path, flags, mode if at_create else 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if owner is not None:
            os.fchown(fd, *owner)
        if not at_create:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)

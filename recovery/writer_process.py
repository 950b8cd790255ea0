"""Restored small files written and hashed by a forked process of their own.

``FileWriters``' threads share the restore's GIL with the thread that parses tar and the one
that reads: every system call of a write (open, write, close) and every hash hands the GIL
over and back, and on the bench's 2-core machine the small files of a 1 GiB restore took
0.65 s longer written than not written at all (``docs/benchmarks.md``). A process has a
GIL of its own. The restoring process copies each file's contents into a ring of shared
memory and tells the writer, through a pipe, where they are and where they go; the writer
hashes them there, writes the file (``write_file``: exclusive create, owner, mode) and
answers with the SHA-256. Answers come back in the order the files were given, and each one
frees the ring behind it.

The interface is ``FileWriters``': ``write`` (bounded: at most ``max_bytes`` of contents
and ``MAX_FILES`` files wait), ``finish`` (every file on disk, every hash handed to its
``hashed``, or the writer's first error raised), ``close`` (the writer stopped: killed and
reaped when it has not finished, so nothing is written after). The writer ends by itself
when the restoring process is gone (its pipe reads end). Where ``fork`` is missing, or
fails, ``open_writers`` gives the threads.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import mmap
import os
import pickle
import select
import signal
import struct
import sys
from pathlib import Path

from recovery.file_writers import (
    BATCH_BYTES,
    BATCH_FILES,
    MAX_BYTES,
    FileWriters,
    Hashed,
    Writers,
    write_file,
)

MAX_FILES = 1024
"""Files given to the writer and not yet answered, at most: their answers (41 bytes each)
always fit in the answer pipe, so the writer never waits for the restoring process while
that one waits for it."""
_FILE = struct.Struct("<cQQIqqII")
"""b"F", job id, ring offset, size, uid (-1: keep), gid, mode, path length; the path follows.
Wide enough for any uid, gid and name an archive can carry (the system refuses what it
cannot take, and that error is the writer's answer)."""
_END = b"E"
_ANSWER = struct.Struct("<cQ32s")
"""b"R", job id, SHA-256."""
_DONE = b"D"
_FAILED = struct.Struct("<cI")
"""b"X", length of the pickled exception that follows."""


def open_writers() -> Writers:
    """A writer process where ``fork`` works, else ``FileWriters``' threads."""
    if hasattr(os, "fork"):
        try:
            return WriterProcess()
        except OSError:
            pass
    return FileWriters()


class WriterProcess(Writers):
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._size = max_bytes
        self._ring = mmap.mmap(-1, max_bytes)  # anonymous and shared: both processes see it
        job_r, job_w = os.pipe()
        answer_r, answer_w = os.pipe()
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # room for every answer MAX_FILES allows, and more
            with contextlib.suppress(OSError):
                fcntl.fcntl(answer_w, fcntl.F_SETPIPE_SZ, 1 << 20)
        for f in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            f.flush()
        try:
            pid = os.fork()
        except OSError:
            for fd in (job_r, job_w, answer_r, answer_w):
                os.close(fd)
            self._ring.close()
            raise
        if pid == 0:  # the writer
            code = 0
            try:
                os.close(job_w)
                os.close(answer_r)
                _close_other_fds(job_r, answer_w)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the restoring process decides
                _serve(self._ring, job_r, answer_w)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(job_r)
        os.close(answer_w)
        os.set_blocking(answer_r, False)
        self._poll = select.poll()
        self._poll.register(answer_r, select.POLLIN)
        self._pid, self._jobs, self._answers = pid, job_w, answer_r
        self._head = self._tail = 0
        """Bytes placed in the ring and bytes freed, counted from the start (not modulo)."""
        self._waiting: collections.deque[tuple[int, int, Hashed]] = collections.deque()
        """Files given and not answered: job id, ring count at its end, its ``hashed``."""
        self._next_id = 0
        self._batch = bytearray()
        self._batch_files = self._batch_bytes = 0
        self._read = b""
        self._done = False

    def write(
        self,
        path: str | Path,
        data: bytes,
        mode: int,
        owner: tuple[int, int] | None,
        hashed: Hashed = None,
    ) -> None:
        """As ``FileWriters.write``; ``hashed`` is called in this process."""
        self._raise_if_failed()
        n = len(data)
        if n > self._size:
            raise ValueError(f"a file of {n} bytes is larger than the writer's ring")
        while True:
            if not self._waiting:
                self._head = self._tail = 0  # the whole ring is free
            at = self._head % self._size
            skip = self._size - at if at + n > self._size else 0  # to the ring's start
            if self._head + skip + n - self._tail <= self._size and len(self._waiting) < MAX_FILES:
                break
            self._send()
            self._take_answers(block=True)
            self._raise_if_failed()
        self._head += skip
        at = self._head % self._size
        self._ring[at : at + n] = data
        self._head += n
        job = self._next_id
        self._next_id += 1
        self._waiting.append((job, self._head, hashed))
        name = os.fsencode(path)
        uid, gid = owner if owner is not None else (-1, -1)
        self._batch += _FILE.pack(b"F", job, at, n, uid, gid, mode, len(name)) + name
        self._batch_files += 1
        self._batch_bytes += n
        if self._batch_files >= BATCH_FILES or self._batch_bytes >= BATCH_BYTES:
            self._send()
            self._take_answers(block=False)  # once a batch: a read that finds none is a call

    def finish(self) -> None:
        """Wait until every file is written and hashed; raise the writer's first error."""
        self._raise_if_failed()
        self._batch += _END
        self._send()
        while not self._done:
            self._take_answers(block=True)
            self._raise_if_failed()
        self._done = False

    def close(self) -> None:
        """Stop the writer: at once (killed) unless it has finished, then reaped."""
        if not self._pid:
            return
        if self._waiting or self._error is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self._jobs, self._answers):
            try:
                os.close(fd)
            except OSError:
                pass
        os.waitpid(self._pid, 0)
        self._pid = 0
        try:
            self._ring.close()
        except BufferError:  # still viewed after an error: freed with the object
            pass

    def _send(self) -> None:
        if not self._batch:
            return
        view = memoryview(self._batch)
        try:
            while view:
                view = view[os.write(self._jobs, view) :]
        except BrokenPipeError:
            self._take_answers(block=False)  # its error, if it said one
            if self._error is None:
                self._error = OSError("the restore's file writer ended unexpectedly")
            raise self._error from None
        finally:
            view.release()
        self._batch = bytearray()
        self._batch_files = self._batch_bytes = 0

    def _take_answers(self, block: bool) -> None:
        """Read what the writer said; with ``block``, wait until it says something."""
        if block:
            self._poll.poll()
        try:
            got = os.read(self._answers, 1 << 16)
        except BlockingIOError:
            return
        if not got:
            self._error = self._error or OSError("the restore's file writer ended unexpectedly")
            raise self._error
        buf = self._read + got
        at = 0
        while at < len(buf):
            kind = buf[at : at + 1]
            if kind == b"R":
                if len(buf) - at < _ANSWER.size:
                    break
                _, job, digest = _ANSWER.unpack_from(buf, at)
                at += _ANSWER.size
                expected, end, hashed = self._waiting.popleft()
                if job != expected:
                    raise OSError(f"the restore's file writer answered {job}, not {expected}")
                self._tail = end
                if hashed is not None:
                    hashed(digest.hex())
            elif kind == _DONE:
                at += 1
                self._done = True
            elif kind == b"X":
                if len(buf) - at < _FAILED.size:
                    break
                _, size = _FAILED.unpack_from(buf, at)
                if len(buf) - at - _FAILED.size < size:
                    break
                start = at + _FAILED.size
                self._error = pickle.loads(buf[start : start + size])
                at = start + size
            else:
                raise OSError(f"the restore's file writer said {kind!r}")
        self._read = buf[at:]


# --- the writer -----------------------------------------------------------------------------


def _close_other_fds(*keep: int) -> None:
    """Everything inherited but the two pipes (the download's socket above all)."""
    fd = 3
    for k in sorted(keep):
        os.closerange(fd, k)
        fd = k + 1
    os.closerange(fd, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)


def _serve(ring: mmap.mmap, jobs: int, answers: int) -> None:
    view = memoryview(ring)
    pending = b""
    failed = False
    while True:
        got = os.read(jobs, 1 << 16)
        if not got:
            return  # the restoring process closed its end, or is gone
        buf = pending + got
        out = bytearray()
        at = 0
        while at < len(buf):
            if buf[at : at + 1] == _END:
                at += 1
                if not failed:
                    out += _DONE
                continue
            if len(buf) - at < _FILE.size:
                break
            _, job, offset, size, uid, gid, mode, name_len = _FILE.unpack_from(buf, at)
            if len(buf) - at - _FILE.size < name_len:
                break
            start = at + _FILE.size
            path = buf[start : start + name_len]
            at = start + name_len
            if failed:
                continue
            data = view[offset : offset + size]
            try:
                digest = hashlib.sha256(data).digest()
                write_file(os.fsdecode(path), data, mode, None if uid < 0 else (uid, gid))
            except BaseException as exc:
                failed = True
                try:
                    said = pickle.dumps(exc)
                except Exception:
                    said = pickle.dumps(OSError(str(exc)))
                out += _FAILED.pack(b"X", len(said)) + said
                continue
            finally:
                data.release()
            out += _ANSWER.pack(b"R", job, digest)
        pending = buf[at:]
        if out:
            _write_all(answers, out)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

"""Write one backup archive: PAX tar -> zstd -> age, streamed, hashing files on the way.

One read of every file; memory is one 1 MiB read buffer plus zstd's window and one age
chunk, whatever the tree's size. The tar headers come from ``tarfile.TarInfo.tobuf`` (the
standard library's PAX encoder); the stream around them is written here so each file's
bytes go to the compressor exactly once, hashed as they pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

import zstandard

from agent.backup.sources import SourceEntry, StatCache, manifest_entry
from protocol.backup_archive import (
    MANIFEST_NAME,
    AgeWriter,
    ArchiveResult,
    HashingWriter,
    Manifest,
    ManifestEntry,
    content_digest,
    encode_manifest,
)

log = logging.getLogger(__name__)

ZSTD_LEVEL = 1
READ_SIZE = 256 << 10
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)`` with ``what`` in ``files`` / ``bytes``."""


class _TarStream:
    """Tar bytes -> zstd -> ``out``, with compression (and what ``out`` does: encryption,
    hashing, writing) on a second thread.

    The caller's thread reads and hashes the files; this one compresses and encrypts. The
    heavy parts (file reads, SHA-256, zstd, ChaCha20) release the GIL, so on two cores the
    two halves overlap. The queue is bounded (``QUEUE_BLOCKS`` blocks of about 256 KiB), so
    memory stays flat; an error on the consumer side is raised in the caller's thread.
    """

    QUEUE_BLOCKS = 4
    COALESCE = 256 << 10

    def __init__(self, out: BinaryIO) -> None:
        self._cobj = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compressobj()
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._small = bytearray()
        self.size = 0
        self._thread = threading.Thread(target=self._consume, name="backup-zstd", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        try:
            while (block := self._queue.get()) is not None:
                piece = self._cobj.compress(block)
                if piece:
                    self._out.write(piece)
            self._out.write(self._cobj.flush())
        except BaseException as exc:  # handed to the producer thread
            self._error = exc
            while self._queue.get() is not None:  # unblock the producer until it stops
                pass

    def _put(self, block: bytes | None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if len(data) >= self.COALESCE // 4:
            if self._small:
                self._put(bytes(self._small))
                self._small.clear()
            self._put(data)
            return
        self._small += data
        if len(self._small) >= self.COALESCE:
            self._put(bytes(self._small))
            self._small.clear()

    def pad(self) -> None:
        rem = self.size % _BLOCK
        if rem:
            self.write(bytes(_BLOCK - rem))

    def finish(self) -> None:
        self.write(bytes(2 * _BLOCK))
        rem = self.size % _RECORD
        if rem:
            self.write(bytes(_RECORD - rem))
        if self._small:
            self._put(bytes(self._small))
            self._small.clear()
        self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the consumer after a failure on the producer side (it is always draining
        the queue, so the blocking put returns)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _tarinfo(m: ManifestEntry) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(m.path)
    ti.mode = m.mode
    ti.uid, ti.gid = m.uid, m.gid
    ti.uname, ti.gname = m.user, m.group
    ti.mtime = m.mtime_ns / 1e9
    if m.type == "dir":
        ti.type = tarfile.DIRTYPE
    elif m.type == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.linkname = m.target or ""
    else:
        ti.type = tarfile.REGTYPE
        ti.size = m.size
    return ti


def _header(ti: tarfile.TarInfo) -> bytes:
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _copy_file(f: BinaryIO, size: int, tar: _TarStream, on_bytes: Callable[[int], None]) -> str:
    """Stream exactly ``size`` bytes of an open file into the tar; returns its sha256 hex.

    A file that shrank since its header was written is padded with zeros and one that grew
    is cut at ``size``; either way the hash describes what the archive holds, and the
    caller's stat check keeps such a file out of the stat cache.
    """
    h = hashlib.sha256()
    left = size
    while left > 0:
        buf = f.read(min(READ_SIZE, left))
        if not buf:
            log.warning("%s shrank while being backed up; padded with zeros", f.name)
            buf = bytes(min(READ_SIZE, left))
        h.update(buf)
        tar.write(buf)
        left -= len(buf)
        on_bytes(len(buf))
    tar.pad()
    return h.hexdigest()


def write_archive(
    entries: Sequence[SourceEntry],
    out: BinaryIO,
    recipients: Sequence[str],
    *,
    server_id: str = "",
    created_at: float | None = None,
    progress: Progress | None = None,
    cache: StatCache | None = None,
) -> ArchiveResult:
    """Archive ``entries`` (from ``collect_sources``) encrypted to ``recipients`` into ``out``.

    Files that vanished since they were collected are left out; ``out`` is not closed.
    """
    created_at = time.time() if created_at is None else created_at
    hashed = HashingWriter(out)
    age = AgeWriter(hashed, recipients)
    tar = _TarStream(age)
    total_bytes = sum(e.size for e in entries if e.kind == "file")
    done_bytes = 0
    last_report = 0

    def on_bytes(n: int) -> None:
        nonlocal done_bytes, last_report
        done_bytes += n
        if progress and done_bytes - last_report >= (8 << 20):
            last_report = done_bytes
            progress("bytes", done_bytes, total_bytes)

    try:
        written: list[ManifestEntry] = []
        for i, entry in enumerate(entries):
            try:
                m = manifest_entry(entry)
                if m.type == "file":
                    # Open first: a file that vanished is left out before its header is written.
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                    with os.fdopen(fd, "rb", buffering=0) as f:
                        before = os.fstat(fd)
                        m.size, m.mode = before.st_size, before.st_mode & 0o7777
                        m.uid, m.gid, m.mtime_ns = before.st_uid, before.st_gid, before.st_mtime_ns
                        tar.write(_header(_tarinfo(m)))
                        m.sha256 = _copy_file(f, m.size, tar, on_bytes)
                        after = os.fstat(fd)
                    if cache is not None and (
                        after.st_size,
                        after.st_mtime_ns,
                        after.st_ctime_ns,
                    ) == (
                        before.st_size,
                        before.st_mtime_ns,
                        before.st_ctime_ns,
                    ):
                        cache.store(entry.name, after, m.sha256)
                else:
                    tar.write(_header(_tarinfo(m)))
            except (FileNotFoundError, NotADirectoryError):
                log.info("%s vanished before it was archived; left out", entry.path)
                continue
            written.append(m)
            if progress:
                progress("files", i + 1, len(entries))
        if progress:
            progress("bytes", done_bytes, total_bytes)
        digest = content_digest(written, recipients)
        manifest = Manifest(
            created_at=created_at, server_id=server_id, content_digest=digest, entries=written
        )
        body = encode_manifest(manifest)
        mti = tarfile.TarInfo(MANIFEST_NAME)
        mti.size = len(body)
        mti.mode = 0o644
        mti.mtime = created_at
        tar.write(_header(mti))
        tar.write(body)
        tar.pad()
        tar.finish()
    except BaseException:
        tar.abort()
        raise
    age.close()
    return ArchiveResult(
        sha256=hashed.sha256.hexdigest(),
        size=hashed.size,
        content_digest=digest,
        files=len(written),
        plaintext_size=tar.size,
        manifest=manifest,
    )

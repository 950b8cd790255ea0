"""Write one backup archive: PAX tar -> zstd -> age, streamed, hashing files on the way.

One read of every file; memory is one 1 MiB read buffer plus zstd's window and one age
chunk, whatever the tree's size. The tar headers come from ``tarfile.TarInfo.tobuf`` (the
standard library's PAX encoder); the stream around them is written here so each file's
bytes go to the compressor exactly once, hashed as they pass.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import BinaryIO

import msgspec
import zstandard

from agent.backup.sources import SourceEntry, StatCache, manifest_entry
from protocol.backup_archive import (
    MANIFEST_NAME,
    AgeWriter,
    ArchiveResult,
    ContentDigest,
    HashingWriter,
    Manifest,
    ManifestEntry,
    Writable,
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
    hashing, writing) on a second thread, and zstd's own workers beyond that.

    ``threads`` is how many threads may be busy at once (``[backup] threads``): 1 does
    everything in the caller's thread; 2 reads and hashes the files in the caller's
    thread and compresses and encrypts in a second one (the heavy parts, file reads,
    SHA-256, zstd, ChaCha20, release the GIL, so the halves overlap); from 3 on, zstd
    compresses on ``threads - 2`` workers of its own while the second thread encrypts.
    The queue is bounded (``QUEUE_BLOCKS`` blocks of about 256 KiB) and so are zstd's jobs,
    so memory stays flat; an error on the consumer side is raised in the caller's thread.
    """

    QUEUE_BLOCKS = 4
    COALESCE = 256 << 10

    def __init__(self, out: Writable, threads: int = 2) -> None:
        workers = threads - 2 if threads >= 3 else 0
        # No content checksum: age authenticates every byte of the stream before zstd sees
        # it, and the XXH64 pass cost 9 % of the compression (bench/compress.py;
        # docs/decisions/backup-format.md).
        self._cobj = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, write_checksum=False, threads=workers
        ).compressobj()
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._small = bytearray()
        self.size = 0
        self._thread: threading.Thread | None = None
        if threads >= 2:
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
        if self._thread is not None:
            self._queue.put(block)
        elif block is not None:
            piece = self._cobj.compress(block)
            if piece:
                self._out.write(piece)
        else:
            self._out.write(self._cobj.flush())

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
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the consumer after a failure on the producer side (it is always draining
        the queue, so the blocking put returns)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _tarinfo(m: ManifestEntry) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(m.path)
    ti.mode = m.mode
    ti.uid, ti.gid = m.uid, m.gid
    ti.uname, ti.gname = m.user, m.group
    # Whole seconds in tar (a fractional mtime would cost every member a PAX header);
    # the manifest keeps nanoseconds and ``vigil-backup restore`` applies those.
    ti.mtime = m.mtime_ns // 1_000_000_000
    if m.type == "dir":
        ti.type = tarfile.DIRTYPE
    elif m.type == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.linkname = m.target or ""
    else:
        ti.type = tarfile.REGTYPE
        ti.size = m.size
    return ti


_TYPEFLAG = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}
_MAX7 = 8**7
_MAX11 = 8**11


def _ustar(m: ManifestEntry) -> bytes | None:
    """The header ``tarfile`` writes in PAX format when no extended header is needed, built
    directly (``tarfile`` spends about 60 µs per member; 20,000 files is more than a
    second). None when the entry needs PAX records (long or non-ASCII names, big values):
    the caller falls back to ``tarfile``. A test checks byte equality with ``tarfile``."""
    name = m.path + "/" if m.type == "dir" else m.path
    try:
        bn = name.encode("ascii")
        bl = (m.target or "").encode("ascii")
        bu = m.user.encode("ascii")
        bg = m.group.encode("ascii")
    except UnicodeEncodeError:
        return None
    mtime = m.mtime_ns // 1_000_000_000
    size = m.size if m.type == "file" else 0
    if len(bn) > 100 or len(bl) > 100 or len(bu) > 32 or len(bg) > 32:
        return None
    if not (0 <= m.uid < _MAX7 and 0 <= m.gid < _MAX7 and 0 <= size < _MAX11):
        return None
    if not 0 <= mtime < _MAX11:
        return None
    buf = bytearray(_BLOCK)
    buf[0 : len(bn)] = bn
    buf[100:108] = b"%07o\0" % (m.mode & 0o7777)
    buf[108:116] = b"%07o\0" % m.uid
    buf[116:124] = b"%07o\0" % m.gid
    buf[124:136] = b"%011o\0" % size
    buf[136:148] = b"%011o\0" % mtime
    buf[148:156] = b"        "
    buf[156:157] = _TYPEFLAG[m.type]
    buf[157 : 157 + len(bl)] = bl
    buf[257:265] = tarfile.POSIX_MAGIC
    buf[265 : 265 + len(bu)] = bu
    buf[297 : 297 + len(bg)] = bg
    # devmajor/devminor stay NUL for non-device members, as tarfile writes them
    buf[148:155] = b"%06o\0" % sum(buf)
    return bytes(buf)


def _header(m: ManifestEntry) -> bytes:
    fast = _ustar(m)
    if fast is not None:
        return fast
    return _tarinfo(m).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


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


# Longer than 60 lines: one streaming pass whose try/finally owns the tar stream and the
# manifest spool file; its parts are _archive_entry, _Counter and _write_manifest.
def write_archive(
    entries: Iterable[SourceEntry],
    out: Writable,
    recipients: Sequence[str],
    *,
    server_id: str = "",
    created_at: float | None = None,
    progress: Progress | None = None,
    cache: StatCache | None = None,
    totals: tuple[int, int] | None = None,
    spool_dir: str | None = None,
    threads: int = 2,
) -> ArchiveResult:
    """Archive ``entries`` (``walk_sources``, in archive order) encrypted to ``recipients``
    into ``out`` (not closed). Files that vanished since they were listed are left out.

    Nothing is held per file: manifest lines go to a temporary file (in ``spool_dir``) and
    the content digest is computed as they are written; ``cache`` receives the new stat
    records. ``totals`` (files, bytes) is only for ``progress``. ``threads``: the most
    threads kept busy at once (see ``_TarStream``).
    """
    created_at = time.time() if created_at is None else created_at
    total_files, total_bytes = totals or (0, 0)
    hashed = HashingWriter(out)
    age = AgeWriter(hashed, recipients)
    tar = _TarStream(age, threads)
    digest = ContentDigest(recipients)
    spool = tempfile.TemporaryFile(dir=spool_dir)
    counter = _Counter(progress, total_files, total_bytes)
    try:
        count, spool_size = _archive_entries(entries, tar, counter, cache, digest, spool)
        counter.end()
        content = digest.hexdigest()
        manifest = Manifest(created_at=created_at, server_id=server_id, content_digest=content)
        _write_manifest(tar, manifest, spool, spool_size)
        tar.finish()
    except BaseException:
        tar.abort()
        raise
    finally:
        spool.close()
    age.close()
    return ArchiveResult(
        sha256=hashed.sha256.hexdigest(),
        size=hashed.size,
        content_digest=content,
        files=count,
        plaintext_size=tar.size,
    )


def _archive_entries(
    entries: Iterable[SourceEntry],
    tar: _TarStream,
    counter: _Counter,
    cache: StatCache | None,
    digest: ContentDigest,
    spool: BinaryIO,
) -> tuple[int, int]:
    """Write each entry still present into ``tar``, its manifest line to ``spool`` and into
    ``digest``: (entries archived, bytes spooled)."""
    spool_size = 0
    count = 0
    for entry in entries:
        m = _archive_present(entry, tar, counter, cache)
        if m is None:
            continue
        digest.add(m)
        line = (b"," if count else b"") + _entry_enc.encode(m)
        spool.write(line)
        spool_size += len(line)
        count += 1
        if m.type == "file":
            counter.file_done()
    return count, spool_size


def _archive_present(
    entry: SourceEntry, tar: _TarStream, counter: _Counter, cache: StatCache | None
) -> ManifestEntry | None:
    """Archive ``entry``; None when it vanished or changed type since it was listed."""
    try:
        return _archive_entry(entry, tar, counter.on_bytes, cache)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        log.info("%s vanished before it was archived; left out (%s)", entry.path, exc)
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # ELOOP: replaced by a symlink since listed
            raise
        log.info("%s changed type before it was archived; left out", entry.path)
        return None


_entry_enc = msgspec.json.Encoder()


class _Counter:
    """Progress of one archive: files and bytes done against the totals listed before."""

    def __init__(self, progress: Progress | None, total_files: int, total_bytes: int) -> None:
        self.progress = progress
        self.total_files, self.total_bytes = total_files, total_bytes
        self.files = self.done_bytes = self.last_report = 0

    def on_bytes(self, n: int) -> None:
        self.done_bytes += n
        if self.progress and self.done_bytes - self.last_report >= (8 << 20):
            self.last_report = self.done_bytes
            self.progress("bytes", self.done_bytes, self.total_bytes)

    def file_done(self) -> None:
        self.files += 1
        if self.progress:
            self.progress("files", self.files, max(self.total_files, self.files))

    def end(self) -> None:
        if self.progress:
            self.progress("bytes", self.done_bytes, max(self.total_bytes, self.done_bytes))


def _write_manifest(tar: _TarStream, manifest: Manifest, spool: BinaryIO, spool_size: int) -> None:
    """The manifest as msgspec would encode ``manifest``, with the entries (``spool_size``
    bytes of JSON in ``spool``) streamed in."""
    head = encode_manifest(manifest)
    assert head.endswith(b"[]}")
    head, tail = head[:-2], b"]}"
    tar.write(
        _header(
            ManifestEntry(
                path=MANIFEST_NAME,
                type="file",
                mode=0o644,
                size=len(head) + spool_size + len(tail),
                mtime_ns=int(manifest.created_at * 1e9),
            )
        )
    )
    tar.write(head)
    spool.seek(0)
    while block := spool.read(READ_SIZE):
        tar.write(block)
    tar.write(tail)
    tar.pad()


def _archive_entry(
    entry: SourceEntry,
    tar: _TarStream,
    on_bytes: Callable[[int], None],
    cache: StatCache | None,
) -> ManifestEntry:
    m = manifest_entry(entry)
    if m.type != "file":
        tar.write(_header(m))
        return m
    # Open first: a file that vanished is left out before its header is written.
    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb", buffering=0) as f:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileNotFoundError(entry.path)  # replaced since it was listed
        m.size, m.mode = before.st_size, before.st_mode & 0o7777
        m.uid, m.gid, m.mtime_ns = before.st_uid, before.st_gid, before.st_mtime_ns
        tar.write(_header(m))
        m.sha256 = _copy_file(f, m.size, tar, on_bytes)
        after = os.fstat(fd)
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )
    if cache is not None and unchanged:
        cache.store(entry.name, after, m.sha256)
    return m

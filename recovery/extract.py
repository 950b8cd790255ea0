"""Read a backup archive (age -> zstd -> tar) in one streaming pass: verify, and extract.

Everything a restore must refuse is refused here, before anything can land outside the
target: absolute names, ``..``, duplicates, members below a symlink, symlinks that could
leave the target, hard links, devices, fifos. Files are written into a fresh directory the
caller made (``restore`` renames it into place only after every check passed), and checked
against the manifest, the last member, when it arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import msgspec
import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol.backup_archive import (
    MANIFEST_NAME,
    AgeError,
    AgeReader,
    ContentDigest,
    HashingReader,
    Manifest,
    ManifestEntry,
)
from recovery.dir_spread import DirSpread
from recovery.direct_file import DirectFile
from recovery.file_writers import Writers
from recovery.manifest_stream import StreamedManifest
from recovery.refused import ArchiveRefused
from recovery.seen_members import SeenMembers
from recovery.writer_process import open_writers

__all__ = [
    "ArchiveRefused",
    "ReadResult",
    "check_link",
    "check_name",
    "default_threads",
    "read_archive",
]

MAX_MANIFEST = 256 * 1024 * 1024
READ_SIZE = 1 << 20
POOLED_FILE = 1 << 20
"""Files up to this size are read whole, then hashed and written by the writer process
(``recovery.writer_process``)."""
RESTORE_THREADS = 2
"""Threads a restore reads with by default (``vigil-backup restore --threads``): download,
decryption and decompression on one (a restore takes no hash of the ciphertext:
``recovery.backups.check_backup``); tar parsing, checks, the large files' hashes and
writes on the other; small files are hashed and written by a process of their own
(``recovery.writer_process``). A third, decompressing apart, made the 1 GiB restore
slower on the bench's 2-core machine (``docs/benchmarks.md``)."""
VERIFY_THREADS = 3
"""Threads a check without extracting (``verify``, ``diff``) reads with by default:
download, ciphertext hash and decryption on one, decompression on the second, tar parsing
and the file hashes on the caller's. Nothing is written, so the three stages share the
cores alone (``docs/decisions.md``)."""


def default_threads(extracting: bool) -> int:
    """The thread count a read uses when none is asked for."""
    return RESTORE_THREADS if extracting else VERIFY_THREADS


MAX_EXTENDED_HEADER = 1 << 20
"""Largest PAX or GNU long-name header read (tarfile reads one whole into memory; the
writer's are a few hundred bytes: a name, a link target, sizes)."""


@dataclass
class ReadResult:
    manifest: Manifest
    """The manifest; its ``entries`` only when asked for (``keep_entries``)."""
    ciphertext_sha256: str | None
    """None when not taken (``hash_ciphertext=False``: a restore)."""
    ciphertext_size: int
    plaintext_size: int
    files: int = 0
    """Files the manifest lists."""
    entries: int = 0
    """Entries the manifest lists (files, directories, symlinks)."""
    texts: dict[str, bytes] = field(default_factory=dict)
    """Small files' contents when asked for (``keep_small``), for ``diff``."""
    skipped_links: list[str] = field(default_factory=list)
    """Symlinks left out by ``skip_unsafe_links``."""


def check_name(name: str) -> list[str]:
    """The components of a safe relative member name, or ``ArchiveRefused``."""
    if not name or "\x00" in name:
        raise ArchiveRefused(f"refused member with an empty or NUL name: {name!r}")
    if name.startswith("/"):
        raise ArchiveRefused(f"refused absolute path in archive: {name!r}")
    parts = name.rstrip("/").split("/")
    if "" in parts or "." in parts or ".." in parts:
        raise ArchiveRefused(f"refused path with '..' or empty components: {name!r}")
    return parts


def check_link(name: str, target: str) -> None:
    """A symlink may only point inside the target: relative, leading ``..`` at most as deep
    as the link's own directory, no ``..`` after a name (which, through another link, could
    climb out)."""
    if not target or "\x00" in target:
        raise ArchiveRefused(f"refused symlink {name!r} with an empty target")
    if target.startswith("/"):
        raise ArchiveRefused(f"refused symlink {name!r} pointing outside: {target!r}")
    depth = len(name.split("/")) - 1
    ups = 0
    descended = False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if descended:
                raise ArchiveRefused(f"refused symlink {name!r} with '..' inside: {target!r}")
            ups += 1
        else:
            descended = True
    if ups > depth:
        raise ArchiveRefused(f"refused symlink {name!r} pointing outside: {target!r}")


_FAST_TYPES = frozenset((tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.XHDTYPE))
_NUMBERS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345))


def _octal(field: bytes) -> int:
    """A number field as ``tarfile.nti`` reads an octal one (up to the first NUL)."""
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        # The class tarfile's own number parser raises (not in its stubs): tarfile.next()
        # tells it apart from other header errors.
        raise tarfile.InvalidHeaderError("invalid header") from None  # type: ignore[attr-defined]


def _numbers(buf: bytes) -> list[int]:
    """mode, uid, gid, size, mtime, devmajor, devminor, each as ``_octal`` reads it; the
    form the writer makes (octal digits, then a NUL; no device numbers) without a call a
    field: a fifth of the time, which 200,000 small files notice."""
    if buf[107] == buf[115] == buf[123] == buf[135] == buf[147] == 0 and not any(buf[329:345]):
        try:
            return [
                int(buf[100:107], 8),
                int(buf[108:115], 8),
                int(buf[116:123], 8),
                int(buf[124:135], 8),
                int(buf[136:147], 8),
                0,
                0,
            ]
        except ValueError:
            pass  # a NUL inside, blanks only, ...: as tarfile reads it
    return [_octal(buf[a:b]) for a, b in _NUMBERS]


def _byte_sum(buf: bytes) -> int:
    """The sum of a 512-byte header's bytes: Adler-32's first half is one plus the sum of
    the bytes modulo 65521, exact for 256 bytes (at most 65,280); six times ``sum``'s
    speed."""
    return (zlib.adler32(buf[:256]) & 0xFFFF) + (zlib.adler32(buf[256:]) & 0xFFFF) - 2


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses an extended header larger than ``MAX_EXTENDED_HEADER`` before tarfile reads
    it whole into memory; parses the common header itself."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):  # type: ignore[no-untyped-def]
        """The header of a file, directory, symlink or PAX record with octal numbers and a
        POSIX magic (every header the writer makes) parsed as ``tarfile`` does, in a third
        of its time (200,000 files: seconds); any other header (end of archive, a bad
        checksum, base-256 numbers, other types and formats) by ``tarfile`` itself."""
        if (
            len(buf) != tarfile.BLOCKSIZE
            or buf[257:263] != b"ustar\0"
            or buf[156:157] not in _FAST_TYPES
            or (buf[100] | buf[108] | buf[116] | buf[124] | buf[136] | buf[148]) & 0x80
            or (buf[329] | buf[337]) & 0x80
        ):
            return super().frombuf(buf, encoding, errors)
        chksum = _octal(buf[148:156])
        if chksum != 256 + _byte_sum(buf) - sum(buf[148:156]):
            return super().frombuf(buf, encoding, errors)  # signed sums, or refused
        mode, uid, gid, size, mtime, devmajor, devminor = _numbers(buf)
        obj = cls()
        obj.name = tarfile.nts(buf[0:100], encoding, errors)
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime = mode, uid, gid, size, mtime
        obj.chksum = chksum
        obj.type = buf[156:157]
        obj.linkname = tarfile.nts(buf[157:257], encoding, errors)
        obj.uname = tarfile.nts(buf[265:297], encoding, errors)
        obj.gname = tarfile.nts(buf[297:329], encoding, errors)
        obj.devmajor, obj.devminor = devmajor, devminor
        prefix = tarfile.nts(buf[345:500], encoding, errors)
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix:
            obj.name = prefix + "/" + obj.name
        return obj

    def _check_extended(self) -> None:
        if self.size > MAX_EXTENDED_HEADER:
            raise ArchiveRefused(f"refused an extended tar header of {self.size} bytes")

    def _proc_pax(self, tarfile):  # type: ignore[no-untyped-def]
        self._check_extended()
        return super()._proc_pax(tarfile)

    def _proc_gnulong(self, tarfile):  # type: ignore[no-untyped-def]
        self._check_extended()
        return super()._proc_gnulong(tarfile)


class _Plaintext:
    """The tar stream as the forward-only file ``tarfile``'s ``r:`` mode reads: blocks of
    the read-ahead handed out with one copy each (``r|`` mode goes through 10 KiB
    pieces, joined and sliced again for every read). Seeking backwards is refused; a
    forward seek skips. Refused as soon as the stream runs past the size the agent signed
    (a decompression bomb, or a collector's archive padded to fill the disk)."""

    def __init__(self, src: _ReadAhead | _Inline, limit: int | None) -> None:
        self._src = src
        self._limit = limit
        self._buf = memoryview(b"")
        self._pos = 0
        self.size = 0
        """Bytes taken from ``src`` so far."""

    def _fill(self) -> bool:
        """The next block into the buffer; False at the end of the stream."""
        block = self._src.block()
        if not block:
            return False
        self.size += len(block)
        if self._limit is not None and self.size > self._limit:
            raise ArchiveRefused(
                f"the archive expands beyond its signed plaintext size ({self._limit} bytes)"
            )
        self._buf = memoryview(block)
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while buf := self.read(READ_SIZE):
                parts.append(buf)
            return b"".join(parts)
        if not self._buf and n and not self._fill():
            return b""
        if len(self._buf) >= n:
            out = self._buf[:n].tobytes()
            self._buf = self._buf[n:]
        else:
            parts = [self._buf.tobytes()]
            got = len(parts[0])
            self._buf = memoryview(b"")
            while got < n and self._fill():
                take = self._buf[: n - got]
                parts.append(take.tobytes())
                got += len(take)
                self._buf = self._buf[len(take) :]
            out = b"".join(parts)
        self._pos += len(out)
        return out

    def view(self, n: int) -> memoryview:
        """Up to ``n`` bytes (fewer at the end of a block; empty at the end of the stream)
        as a view of the block they are in: no copy, for what is only hashed or written."""
        if not self._buf and not self._fill():
            return self._buf
        out = self._buf[:n]
        self._buf = self._buf[len(out) :]
        self._pos += len(out)
        return out

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or pos < self._pos:
            raise tarfile.ReadError("the tar stream cannot be read backwards")
        while self._pos < pos:
            if not self._buf and not self._fill():
                break
            skip = min(pos - self._pos, len(self._buf))
            self._buf = self._buf[skip:]
            self._pos += skip
        return self._pos


class _ReadAhead:
    """``src`` read ahead on a thread of its own, in blocks of ``BLOCK`` bytes: the
    decompressed tar stream (downloading, hashing the ciphertext unless restoring,
    ChaCha20 and zstd, which release the GIL, beside the tar parsing and the large
    files' SHA-256 and writes on the caller's thread; small files are hashed and
    written by the writer process), or, with three threads, the decrypted stream
    zstd reads on another. At most ``BLOCKS`` blocks wait; an error on the reading side is raised
    by ``block`` in the consuming thread. Each block is a fresh object, handed over
    without a copy.
    """

    BLOCK = 1 << 20
    BLOCKS = 4

    def __init__(self, src: object, name: str = "restore-read-ahead") -> None:
        self._src = src
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self.BLOCKS)
        self._ended = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                data = self._src.read(self.BLOCK)  # type: ignore[attr-defined]
                self._queue.put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the caller's thread
            self._queue.put(exc)

    def block(self) -> bytes:
        """The next block as it came from ``src`` (``b""`` at the end)."""
        if self._ended:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        if not item:
            self._ended = True
        return item

    def close(self) -> None:
        """Stop the reading thread (it may be waiting to hand over a block)."""
        self._stop = True
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass


class _Blocks:
    """The blocks a ``_ReadAhead`` hands over as a readable file (for zstd's reader, which
    asks for ``_ReadAhead.BLOCK`` bytes at a time: each read is one block, no copy)."""

    def __init__(self, ahead: _ReadAhead) -> None:
        self._ahead = ahead
        self._left = memoryview(b"")

    def read(self, n: int = -1) -> bytes | memoryview:
        if not self._left:
            block = self._ahead.block()
            if n is None or n < 0 or len(block) <= n:
                return block
            self._left = memoryview(block)
        out, self._left = self._left[:n], self._left[n:]
        return out


class _Inline:
    """The plaintext in blocks read on the caller's thread (``threads=1``)."""

    def __init__(self, src: object) -> None:
        self._src = src

    def block(self) -> bytes:
        return self._src.read(_ReadAhead.BLOCK)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass


def _drain(reader: object) -> None:
    while reader.read(READ_SIZE):  # type: ignore[attr-defined]
        pass


class _Counting:
    """Reads ``src``, counting the bytes taken (``size``) and reporting ``progress`` every
    4 MiB."""

    def __init__(
        self,
        src: BinaryIO | HashingReader,
        progress: Callable[[str, int, int], None] | None,
        total_size: int,
    ) -> None:
        self.src = src
        self.progress, self.total_size = progress, total_size
        self.size = self.last_report = 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.size += len(data)
        if self.progress and self.size - self.last_report >= (4 << 20):
            self.last_report = self.size
            self.progress("bytes", self.size, self.total_size)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self.src.readline(limit)
        self.size += len(data)
        return data


def _set_time(dest: Path, e: ManifestEntry) -> None:
    """The exact time from the manifest (tar's PAX mtime passes through a float). Setting
    a time changes no directory's own time, so the manifest's order will do."""
    try:
        os.utime(
            os.path.join(dest, *e.path.split("/")),
            ns=(e.mtime_ns, e.mtime_ns),
            follow_symlinks=False,
        )
    except (OSError, OverflowError, ValueError) as exc:
        raise ArchiveRefused(f"{e.path!r}: cannot set its time: {exc}") from None


@contextlib.contextmanager
def _refused_as_one() -> Iterator[None]:
    """Every way reading an archive or writing its tree fails, as ``ArchiveRefused``."""
    try:
        yield
    except AgeError as exc:
        raise ArchiveRefused(str(exc)) from None
    except zstandard.ZstdError as exc:
        raise ArchiveRefused(f"compressed stream is damaged: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveRefused(f"tar stream is damaged: {exc}") from None
    except OSError as exc:
        raise ArchiveRefused(f"cannot read the archive or write the restored tree: {exc}") from None


def read_archive(
    src: BinaryIO,
    identities: Sequence[X25519PrivateKey],
    *,
    recipients: Sequence[str],
    dest: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    total_size: int = 0,
    max_plaintext: int | None = None,
    keep_small: int = 0,
    keep_entries: bool = False,
    skip_unsafe_links: bool = False,
    threads: int | None = None,
    hash_ciphertext: bool = True,
) -> ReadResult:
    """Decrypt, decompress and check one archive; extract it into ``dest`` (an existing empty
    directory) when given. ``recipients`` are the signed header's (they are part of the
    content digest). Raises ``ArchiveRefused`` (or ``AgeError``) on anything wrong.

    ``skip_unsafe_links``: a symlink that could point outside ``dest`` (absolute targets
    are common in ``/etc``) is left out instead of failing the restore; the names are in
    ``ReadResult.skipped_links``. Every other check still applies.

    ``keep_entries``: ``ReadResult.manifest.entries`` holds every entry (for ``diff``);
    otherwise it is empty, and memory stays flat whatever the number of files.

    ``threads``: 3 downloads, hashes and decrypts on one thread and decompresses on
    another; 2 does both on one thread; 1 reads everything on the caller's. None: the
    default for a restore (``dest`` given) or a check (``default_threads``).

    ``hash_ciphertext``: take the SHA-256 of ``src`` as read (``ReadResult.ciphertext_sha256``).
    A restore does not (``recovery.backups.check_backup`` says why); its size is always
    counted.

    ``max_plaintext``: the signed size of the tar stream; nothing beyond it is read or
    written. Whatever the input, the only exception is ``ArchiveRefused`` (a write that
    fails, e.g. a full disk, is one too)."""
    if threads is None:
        threads = default_threads(dest is not None)
    hashed = HashingReader(src) if hash_ciphertext else None
    decrypting: _ReadAhead | None = None
    ahead: _ReadAhead | _Inline | None = None
    writers: Writers | None = None
    try:
        with _refused_as_one():
            # Forked before any reading thread starts: no lock another thread holds is
            # copied into the writer.
            writers = open_writers() if dest is not None else None
            counted = _Counting(src if hashed is None else hashed, progress, total_size)
            age = AgeReader(counted, identities)  # type: ignore[arg-type]
            if threads >= 3:
                decrypting = _ReadAhead(age, "verify-decrypt")
            plain = age if decrypting is None else _Blocks(decrypting)
            # AgeReader is a readable binary file; zstandard's stubs ask for typing.IO.
            zr = zstandard.ZstdDecompressor().stream_reader(
                plain,  # type: ignore[arg-type]
                read_size=_ReadAhead.BLOCK,
                read_across_frames=True,
            )
            ahead = _ReadAhead(zr, "verify-decompress") if threads >= 2 else _Inline(zr)
            stream = _Plaintext(ahead, max_plaintext)
            walk = _Walk(
                stream, dest, writers, recipients, keep_small, keep_entries, skip_unsafe_links
            )
            manifest = walk.run()
            _drain(stream)
            ahead.close()
            _drain(plain)
    finally:
        if ahead is not None:
            ahead.close()
        if decrypting is not None:
            decrypting.close()
        if writers is not None:
            writers.close()
    if progress:
        progress("bytes", counted.size, total_size)
    return ReadResult(
        manifest=manifest,
        ciphertext_sha256=None if hashed is None else hashed.sha256.hexdigest(),
        ciphertext_size=counted.size,
        plaintext_size=walk.plain,
        files=walk.files,
        entries=walk.entries,
        texts=walk.texts,
        skipped_links=walk.skipped,
    )


class _Walk:
    """One pass over the tar members: each checked, and extracted below ``dest`` when given
    (small files through the writer process); the manifest, when it comes last, checked entry
    by entry against what was read (``SeenMembers``), then the exact times set. Nothing is
    kept per member but ``SeenMembers``' fixed record (and, for ``diff``, small files'
    contents and the manifest's entries)."""

    def __init__(
        self,
        stream: _Plaintext,
        dest: Path | None,
        writers: Writers | None,
        recipients: Sequence[str],
        keep_small: int,
        keep_entries: bool,
        skip_unsafe_links: bool,
    ) -> None:
        self.stream, self.dest, self.recipients = stream, dest, recipients
        self.keep_small, self.keep_entries = keep_small, keep_entries
        self.skip_unsafe_links = skip_unsafe_links
        self.seen = SeenMembers()
        self.texts: dict[str, bytes] = {}
        self.skipped: list[str] = []
        self.dirs: list[tuple[str, int, int, int, bool]] = []
        """Directories made: path, uid, gid, mode (set after their contents are written),
        and whether ``spread`` flagged it."""
        self.spread = DirSpread()
        self.made: set[str] = set()  # directories known to exist: one mkdir each
        self.root = None if dest is None else os.fspath(dest)
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.writers = writers
        """Small files' writers (given with ``dest``); ``read_archive`` made them and stops
        them."""
        self.manifest: Manifest | None = None
        self.plain = self.files = self.entries = 0

    def run(self) -> Manifest:
        """Read every member; the manifest (its entries only with ``keep_entries``)."""
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=self.stream, mode="r:", errors="surrogateescape", tarinfo=_BoundedTarInfo
        ) as tar:
            while (member := tar.next()) is not None:
                # Read once, front to back: keep no TarInfo of the members already read
                # (tarfile lists them all, which grows with the file count).
                tar.members.clear()
                self._member(member)
        if self.manifest is None:
            raise ArchiveRefused("archive has no manifest (truncated or not a Vigil backup)")
        return self.manifest

    def _member(self, member: tarfile.TarInfo) -> None:
        name = member.name.rstrip("/") if member.isdir() else member.name
        if self.manifest is not None:
            raise ArchiveRefused(f"member after the manifest: {name!r}")
        if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveRefused(f"refused sparse file: {name!r}")  # never written
        if name == MANIFEST_NAME and member.isreg():
            if member.size > MAX_MANIFEST:
                raise ArchiveRefused("manifest too large")
            self._settle()
            self.manifest = self._check_manifest(member)
            return
        parts = _checked_parts(name, self.seen)
        mode, uid, gid = member.mode & 0o7777, member.uid, member.gid
        path = _prepared_path(self.root, parts, member, self.made)
        if member.isreg():
            owner = (uid, gid) if self.as_root else None
            self.plain += member.size
            if path is not None and self.writers is not None and member.size <= POOLED_FILE:
                # Read whole, then hashed and written by the writer process, which has a
                # GIL of its own (docs/benchmarks.md: "The small files' writer").
                data = _contents(self.stream, member)
                record = self.seen.record(name, "file", mode, uid, gid, hash_later=True)
                index = self.seen.add(record)
                hashed = self.seen.hash_later(index, member.size)
                self.writers.write(path, data, mode, owner, hashed)
                if member.size <= self.keep_small:
                    self.texts[name] = data
                return
            sha256, kept = _take_file(self.stream, member, path, self.keep_small, owner)
            if kept is not None:
                self.texts[name] = kept
            self.seen.add(self.seen.record(name, "file", mode, uid, gid, member.size, sha256))
        elif member.isdir():
            if path is not None:
                _make_dir(path)
                self.made.add(path)
                self.dirs.append((path, uid, gid, mode, self.spread.mark(path)))
            self.seen.add(self.seen.record(name, "dir", mode, uid, gid))
        elif member.issym():
            if not _restore_symlink(member, path, self.skip_unsafe_links, self.as_root):
                self.skipped.append(name)
            self.seen.add(self.seen.record(name, "symlink", mode, uid, gid, target=member.linkname))
        elif member.islnk():
            raise ArchiveRefused(f"refused hard link: {name!r}")
        elif member.isdev() or member.isfifo():
            raise ArchiveRefused(f"refused device file or fifo: {name!r}")
        else:
            raise ArchiveRefused(f"refused member of unknown type: {name!r}")

    def _settle(self) -> None:
        """Every file on disk, then the directories' owners and modes, deepest first."""
        if self.writers is not None:
            self.writers.finish()
        for path, uid, gid, mode, marked in reversed(self.dirs):
            if marked:
                self.spread.unmark(path)
            if self.as_root:
                os.chown(path, uid, gid)
            os.chmod(path, mode)
        self.dirs.clear()

    def _check_manifest(self, member: tarfile.TarInfo) -> Manifest:
        """The manifest streamed entry by entry: each matched with the member read, added
        to the content digest and, when extracting, its time set."""
        streamed = StreamedManifest(_member_blocks(self.stream, member))
        match = self.seen.matcher()
        digest = ContentDigest(self.recipients)
        skipped = set(self.skipped)
        kept: list[ManifestEntry] = []
        for e in streamed.entries():
            match.entry(e)
            digest.add(e)
            self.entries += 1
            self.files += e.type == "file"
            if self.dest is not None and e.path not in skipped:
                _set_time(self.dest, e)
            if self.keep_entries:
                kept.append(e)
        match.finish()
        if digest.hexdigest() != streamed.head.content_digest:
            raise ArchiveRefused("manifest content digest does not recompute")
        return msgspec.structs.replace(streamed.head, entries=kept)


def _member_blocks(stream: _Plaintext, member: tarfile.TarInfo) -> Callable[[], bytes]:
    """A member's data in blocks of at most ``READ_SIZE`` (``b""`` at its end)."""
    stream.seek(member.offset_data)
    left = member.size

    def read() -> bytes:
        nonlocal left
        if not left:
            return b""
        data = stream.read(min(READ_SIZE, left))
        if not data:
            raise tarfile.ReadError("unexpected end of data")
        left -= len(data)
        return data

    return read


def _checked_parts(name: str, seen: SeenMembers) -> list[str]:
    """The member name's parts; refused when seen before, below a non-directory, or in
    the reserved ``.vigil/``."""
    parts = check_name(name)
    seen.check(name, parts)
    if parts[0] == ".vigil":
        raise ArchiveRefused(f"refused member in the reserved .vigil/: {name!r}")
    return parts


def _prepared_path(
    root: str | None, parts: list[str], member: tarfile.TarInfo, made: set[str]
) -> str | None:
    """Where the member goes below ``root`` (None: checking only), its parent made. Paths
    are strings: ``pathlib`` cost more than the rest of a small file's handling."""
    if root is None:
        return None
    path = os.path.join(root, *parts)
    parent = os.path.dirname(path)
    if parent not in made:
        os.makedirs(parent, mode=0o755, exist_ok=True)
        for _ in range(len(parts) - 1):  # every directory makedirs may have made
            made.add(parent)
            parent = os.path.dirname(parent)
    if not member.isdir() and path in made:
        # made as the parent of an earlier member: tar order says otherwise. ``root`` was
        # empty, so ``made`` holds every directory below it (no ``lstat`` per member);
        # anything else in the way makes the exclusive create fail.
        raise ArchiveRefused(f"refused {member.name!r}: a directory of that name exists")
    return path


def _make_dir(path: str) -> None:
    """``mkdir`` (private until its mode is set); an existing directory will do."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def _restore_symlink(
    member: tarfile.TarInfo, path: str | None, skip_unsafe_links: bool, as_root: bool
) -> bool:
    """Check (and at ``path``, make) a symlink; False when it is unsafe and skipped."""
    name = member.name
    try:
        check_link(name, member.linkname)
    except ArchiveRefused:
        if not skip_unsafe_links:
            raise
        return False
    if path is not None:
        try:
            os.symlink(member.linkname, path)
        except FileExistsError:
            raise ArchiveRefused(f"refused symlink over a directory: {name!r}") from None
        if as_root:
            os.lchown(path, member.uid, member.gid)
    return True


def _contents(stream: _Plaintext, member: tarfile.TarInfo) -> bytes:
    """A member's data, read whole from where it starts."""
    stream.seek(member.offset_data)
    data = stream.read(member.size)
    if len(data) != member.size:
        raise tarfile.ReadError("unexpected end of data")
    return data


def _take_file(
    stream: _Plaintext,
    member: tarfile.TarInfo,
    path: str | None,
    keep_small: int,
    owner: tuple[int, int] | None,
) -> tuple[str, bytes | None]:
    """Hash a file member as it streams and, at ``path``, write it with its mode and
    ``owner``; its SHA-256, and its contents when no larger than ``keep_small``."""
    mode = member.mode & 0o7777
    keep = member.size <= keep_small
    h = hashlib.sha256()
    kept = bytearray()
    fd = None
    out: DirectFile | None = None
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if fd is not None:
            out = DirectFile(fd)
        stream.seek(member.offset_data)
        left = member.size
        while left:
            buf = stream.view(min(READ_SIZE, left))
            if not buf:
                raise tarfile.ReadError("unexpected end of data")
            left -= len(buf)
            h.update(buf)
            if keep:
                kept += buf
            if out is not None:
                out.write(buf)
        if out is not None:
            done, out = out, None
            done.close()
        if fd is not None:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
    finally:
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()  # after another error: the thread ends before the fd closes
        if fd is not None:
            os.close(fd)
    return h.hexdigest(), bytes(kept) if keep else None

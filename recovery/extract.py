"""Read a backup archive (age -> zstd -> tar) in one streaming pass: verify, and extract.

Everything a restore must refuse is refused here, before anything can land outside the
target: absolute names, ``..``, duplicates, members below a symlink, symlinks that could
leave the target, hard links, devices, fifos. Files are written into a fresh directory the
caller made (``restore`` renames it into place only after every check passed), and checked
against the manifest, the last member, when it arrives.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol.backup_archive import (
    MANIFEST_NAME,
    AgeError,
    AgeReader,
    HashingReader,
    Manifest,
    content_digest,
    decode_manifest,
)
from recovery.drop_behind import DropBehind
from recovery.file_writers import FileWriters

MAX_MANIFEST = 256 * 1024 * 1024
READ_SIZE = 1 << 20
POOLED_FILE = 1 << 20
"""Files up to this size are read whole and written by ``FileWriters``' threads."""
MAX_EXTENDED_HEADER = 1 << 20
"""Largest PAX or GNU long-name header read (tarfile reads one whole into memory; the
writer's are a few hundred bytes: a name, a link target, sizes)."""


class ArchiveRefused(Exception):
    """The archive is damaged, altered, or holds something a restore must not write."""


@dataclass
class ReadResult:
    manifest: Manifest
    ciphertext_sha256: str
    ciphertext_size: int
    plaintext_size: int
    texts: dict[str, bytes] = field(default_factory=dict)
    """Small files' contents when asked for (``keep_small``), for ``diff``."""
    skipped_links: list[str] = field(default_factory=list)
    """Symlinks left out by ``skip_unsafe_links``."""


@dataclass
class _Seen:
    type: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    sha256: str | None = None
    target: str | None = None


def check_name(name: str) -> list[str]:
    """The components of a safe relative member name, or ``ArchiveRefused``."""
    if not name or "\x00" in name:
        raise ArchiveRefused(f"refused member with an empty or NUL name: {name!r}")
    if name.startswith("/"):
        raise ArchiveRefused(f"refused absolute path in archive: {name!r}")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
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


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses an extended header larger than ``MAX_EXTENDED_HEADER`` before tarfile reads
    it whole into memory."""

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

    def __init__(self, src: _ReadAhead, limit: int | None) -> None:
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
    """The plaintext, read ahead on a second thread: downloading, hashing the ciphertext,
    ChaCha20 and zstd (which release the GIL) run beside the tar parsing, the files'
    SHA-256 and the large files' writes on the caller's thread (small files are written
    by ``FileWriters``' threads). At most ``BLOCKS`` blocks of ``BLOCK``
    bytes wait; an error on the reading side is raised by ``block`` in the caller's thread.
    """

    BLOCK = 1 << 20
    BLOCKS = 4

    def __init__(self, src: object) -> None:
        self._src = src
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(self.BLOCKS)
        self._ended = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="restore-read-ahead", daemon=True)
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


def _drain(reader: object) -> None:
    while reader.read(READ_SIZE):  # type: ignore[attr-defined]
        pass


class _Counting:
    """Reads ``hashed``, reporting ``progress`` every 4 MiB."""

    def __init__(
        self,
        hashed: HashingReader,
        progress: Callable[[str, int, int], None] | None,
        total_size: int,
    ) -> None:
        self.hashed, self.progress, self.total_size = hashed, progress, total_size
        self.last_report = 0

    def read(self, n: int = -1) -> bytes:
        data = self.hashed.read(n)
        if self.progress and self.hashed.size - self.last_report >= (4 << 20):
            self.last_report = self.hashed.size
            self.progress("bytes", self.hashed.size, self.total_size)
        return data

    def readline(self, limit: int = -1) -> bytes:
        return self.hashed.readline(limit)


def _set_times(dest: Path, manifest: Manifest, skipped: list[str]) -> None:
    """Exact times from the manifest (tar's PAX mtime passes through a float), children
    before their directories so setting one does not disturb the other."""
    for e in reversed(manifest.entries):
        if e.path in skipped:
            continue
        try:
            os.utime(
                dest.joinpath(*e.path.split("/")),
                ns=(e.mtime_ns, e.mtime_ns),
                follow_symlinks=False,
            )
        except (OSError, OverflowError, ValueError) as exc:
            raise ArchiveRefused(f"{e.path!r}: cannot set its time: {exc}") from None


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
    skip_unsafe_links: bool = False,
) -> ReadResult:
    """Decrypt, decompress and check one archive; extract it into ``dest`` (an existing empty
    directory) when given. ``recipients`` are the signed header's (they are part of the
    content digest). Raises ``ArchiveRefused`` (or ``AgeError``) on anything wrong.

    ``skip_unsafe_links``: a symlink that could point outside ``dest`` (absolute targets
    are common in ``/etc``) is left out instead of failing the restore; the names are in
    ``ReadResult.skipped_links``. Every other check still applies.

    ``max_plaintext``: the signed size of the tar stream; nothing beyond it is read or
    written. Whatever the input, the only exception is ``ArchiveRefused`` (a write that
    fails, e.g. a full disk, is one too)."""
    hashed = HashingReader(src)
    try:
        age = AgeReader(_Counting(hashed, progress, total_size), identities)  # type: ignore[arg-type]
        # AgeReader is a readable binary file; zstandard's stubs ask for typing.IO.
        zr = zstandard.ZstdDecompressor().stream_reader(age, read_across_frames=True)  # type: ignore[arg-type]
        ahead = _ReadAhead(zr)
        try:
            stream = _Plaintext(ahead, max_plaintext)
            seen, manifest, texts, plain, skipped = _walk(
                stream, dest, keep_small, skip_unsafe_links
            )
            _drain(stream)
        finally:
            ahead.close()
        _drain(age)
    except AgeError as exc:
        raise ArchiveRefused(str(exc)) from None
    except zstandard.ZstdError as exc:
        raise ArchiveRefused(f"compressed stream is damaged: {exc}") from None
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveRefused(f"tar stream is damaged: {exc}") from None
    except OSError as exc:
        raise ArchiveRefused(f"cannot read the archive or write the restored tree: {exc}") from None
    if progress:
        progress("bytes", hashed.size, total_size)
    _check_manifest(seen, manifest, recipients)
    if dest is not None:
        _set_times(dest, manifest, skipped)
    return ReadResult(
        manifest=manifest,
        ciphertext_sha256=hashed.sha256.hexdigest(),
        ciphertext_size=hashed.size,
        plaintext_size=plain,
        texts=texts,
        skipped_links=skipped,
    )


def _walk(
    stream: _Plaintext, dest: Path | None, keep_small: int, skip_unsafe_links: bool
) -> tuple[dict[str, _Seen], Manifest, dict[str, bytes], int, list[str]]:
    skipped: list[str] = []
    seen: dict[str, _Seen] = {}
    texts: dict[str, bytes] = {}
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    writers = FileWriters() if dest is not None else None
    try:
        manifest, plain = _members(
            stream, dest, keep_small, skip_unsafe_links, writers, seen, texts, skipped, dirs
        )
        if writers is not None:
            writers.finish()  # every file on disk before its directory's mode is set
    finally:
        if writers is not None:
            writers.close()
    if manifest is None:
        raise ArchiveRefused("archive has no manifest (truncated or not a Vigil backup)")
    for path, member in reversed(dirs):  # deepest first, after their contents are written
        if as_root:
            os.chown(path, member.uid, member.gid)
        os.chmod(path, member.mode & 0o7777)
    return seen, manifest, texts, plain, skipped


def _members(
    stream: _Plaintext,
    dest: Path | None,
    keep_small: int,
    skip_unsafe_links: bool,
    writers: FileWriters | None,
    seen: dict[str, _Seen],
    texts: dict[str, bytes],
    skipped: list[str],
    dirs: list[tuple[Path, tarfile.TarInfo]],
) -> tuple[Manifest | None, int]:
    """Every member of the tar stream checked, and extracted below ``dest`` when given
    (files through ``writers``); returns the manifest and the files' total size."""
    manifest: Manifest | None = None
    made: set[Path] = set()  # directories known to exist: one mkdir each, not one per file
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    plain = 0
    with tarfile.open(  # type: ignore[call-overload]
        fileobj=stream, mode="r:", errors="surrogateescape", tarinfo=_BoundedTarInfo
    ) as tar:
        while (member := tar.next()) is not None:
            # Read once, front to back: keep no TarInfo of the members already read
            # (tarfile lists them all, which grows with the file count).
            tar.members.clear()
            name = member.name.rstrip("/") if member.isdir() else member.name
            if manifest is not None:
                raise ArchiveRefused(f"member after the manifest: {name!r}")
            if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
                raise ArchiveRefused(f"refused sparse file: {name!r}")  # never written
            if name == MANIFEST_NAME and member.isreg():
                if member.size > MAX_MANIFEST:
                    raise ArchiveRefused("manifest too large")
                manifest = decode_manifest(_contents(stream, member))
                continue
            parts = _checked_parts(name, seen)
            rec = _Seen(type="", mode=member.mode & 0o7777, uid=member.uid, gid=member.gid)
            path = _prepared_path(dest, parts, member, made)
            if member.isreg():
                rec.type, rec.size = "file", member.size
                owner = (member.uid, member.gid) if as_root else None
                rec.sha256, data = _take_file(stream, member, path, keep_small, writers, owner)
                plain += member.size
                if data is not None:
                    texts[name] = data
            elif member.isdir():
                rec.type = "dir"
                if path is not None:
                    path.mkdir(mode=0o700, exist_ok=True)
                    made.add(path)
                    dirs.append((path, member))
            elif member.issym():
                rec.type, rec.target = "symlink", member.linkname
                if not _restore_symlink(member, path, skip_unsafe_links, as_root):
                    skipped.append(name)
            elif member.islnk():
                raise ArchiveRefused(f"refused hard link: {name!r}")
            elif member.isdev() or member.isfifo():
                raise ArchiveRefused(f"refused device file or fifo: {name!r}")
            else:
                raise ArchiveRefused(f"refused member of unknown type: {name!r}")
            seen[name] = rec
    return manifest, plain


def _checked_parts(name: str, seen: dict[str, _Seen]) -> list[str]:
    """The member name's parts; refused when seen before, below a non-directory, or in
    the reserved ``.vigil/``."""
    parts = check_name(name)
    if name in seen:
        raise ArchiveRefused(f"refused duplicate member: {name!r}")
    for i in range(1, len(parts)):
        parent = seen.get("/".join(parts[:i]))
        if parent is not None and parent.type != "dir":
            raise ArchiveRefused(f"refused member below a {parent.type}: {name!r}")
    if parts[0] == ".vigil":
        raise ArchiveRefused(f"refused member in the reserved .vigil/: {name!r}")
    return parts


def _prepared_path(
    dest: Path | None, parts: list[str], member: tarfile.TarInfo, made: set[Path]
) -> Path | None:
    """Where the member goes below ``dest`` (None: checking only), its parent made."""
    if dest is None:
        return None
    path = dest.joinpath(*parts)
    if path.parent not in made:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        made.update(path.parents[: len(parts) - 1])  # every directory mkdir may have made
    if not member.isdir() and path in made:
        # made as the parent of an earlier member: tar order says otherwise. ``dest`` was
        # empty, so ``made`` holds every directory below it (no ``lstat`` per member);
        # anything else in the way makes the exclusive create fail.
        raise ArchiveRefused(f"refused {member.name!r}: a directory of that name exists")
    return path


def _restore_symlink(
    member: tarfile.TarInfo, path: Path | None, skip_unsafe_links: bool, as_root: bool
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
    path: Path | None,
    keep_small: int,
    writers: FileWriters | None,
    owner: tuple[int, int] | None,
) -> tuple[str, bytes | None]:
    """Hash a file member and, at ``path``, write it with its mode and ``owner``: a small
    one whole through ``writers``, a large one here as it streams."""
    mode = member.mode & 0o7777
    keep = member.size <= keep_small
    if path is not None and writers is not None and member.size <= POOLED_FILE:
        data = _contents(stream, member)
        writers.write(path, data, mode, owner)
        return hashlib.sha256(data).hexdigest(), data if keep else None
    h = hashlib.sha256()
    kept = bytearray()
    fd = dropped = None
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        dropped = DropBehind(fd)
    try:
        stream.seek(member.offset_data)
        left = member.size
        while left:
            buf = stream.read(min(READ_SIZE, left))
            if not buf:
                raise tarfile.ReadError("unexpected end of data")
            left -= len(buf)
            h.update(buf)
            if keep:
                kept += buf
            if fd is not None and dropped is not None:
                view = memoryview(buf)
                while view:
                    view = view[os.write(fd, view) :]
                dropped.written(len(buf))
        if fd is not None:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
    finally:
        if fd is not None:
            os.close(fd)
    return h.hexdigest(), bytes(kept) if keep else None


def _check_manifest(seen: dict[str, _Seen], manifest: Manifest, recipients: Sequence[str]) -> None:
    listed = {e.path: e for e in manifest.entries}
    if len(listed) != len(manifest.entries):
        raise ArchiveRefused("manifest lists a path twice")
    if missing := sorted(set(listed) - set(seen)):
        raise ArchiveRefused(f"manifest entry missing from the archive: {missing[0]!r}")
    if extra := sorted(set(seen) - set(listed)):
        raise ArchiveRefused(f"archive member not in the manifest: {extra[0]!r}")
    for name, rec in seen.items():
        e = listed[name]
        if rec.type != e.type:
            raise ArchiveRefused(f"{name!r}: type {rec.type} in tar, {e.type} in the manifest")
        if rec.type == "file" and (rec.size != e.size or rec.sha256 != e.sha256):
            raise ArchiveRefused(f"{name!r}: content does not match the manifest's SHA-256")
        if (rec.mode, rec.uid, rec.gid) != (e.mode, e.uid, e.gid):
            raise ArchiveRefused(f"{name!r}: metadata does not match the manifest")
        if rec.type == "symlink" and rec.target != e.target:
            raise ArchiveRefused(f"{name!r}: link target does not match the manifest")
    if content_digest(manifest.entries, recipients) != manifest.content_digest:
        raise ArchiveRefused("manifest content digest does not recompute")

"""What a backup contains: the ``[backup]`` paths resolved to files, and the stat cache.

Pure filesystem reading, no network. The stat cache maps an archived path to
``(size, mtime_ns, ctime_ns, inode) -> sha256`` so an unchanged tree is re-checked with
``lstat`` calls alone instead of re-reading every byte. Everything here streams in archive
order (parents first, components sorted): nothing is held per file.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from agent import platform
from agent.backup.config import BackupSettings
from protocol.backup_archive import ContentDigest, ManifestEntry

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """One path to archive, with the ``lstat`` fields the backup needs (not the whole
    ``stat_result``: a tree of 100,000 files must not cost 60 MB before it is read)."""

    path: str
    """Absolute filesystem path."""
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    uid: int
    gid: int

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result) -> SourceEntry:
        return cls(
            path,
            st.st_mode,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_uid,
            st.st_gid,
        )

    @property
    def name(self) -> str:
        """Tar member name: ``path`` without its leading ``/``."""
        return self.path.lstrip("/")

    @property
    def kind(self) -> str:
        if stat.S_ISLNK(self.mode):
            return "symlink"
        if stat.S_ISDIR(self.mode):
            return "dir"
        return "file"


class SourceError(Exception):
    """A configured path does not exist or cannot be read (fails the run, with its reason)."""


def _excluded(path: str, patterns: tuple[str, ...]) -> bool:
    base = os.path.basename(path)
    for pat in patterns:
        target = path if "/" in pat else base
        if fnmatch.fnmatchcase(target, pat) or (
            "/" in pat and fnmatch.fnmatchcase(path, pat + "/*")
        ):
            return True
    return False


def order_key(path: str) -> str:
    """Sort key of the archive order: by path components, parents first ("/" sorts lowest).
    The walk, the manifest, the content digest and the stat cache all use this order."""
    return path.replace("/", "\x00")


def resolve_roots(settings: BackupSettings) -> tuple[list[str], list[str]]:
    """The configured paths and glob matches, normalised, excluded, without any path that
    lies inside another one, in archive order; and notes. An explicitly named path that
    does not exist raises ``SourceError``; a glob matching nothing is only a note."""
    notes: list[str] = []
    roots: set[str] = set()
    for pattern in settings.paths:
        if _GLOB_CHARS & set(pattern):
            matches = glob.glob(pattern, recursive=True)
            if not matches:
                notes.append(f"{pattern}: matched nothing")
        else:
            if not os.path.lexists(pattern):
                raise SourceError(f"backup path not found: {pattern}")
            matches = [pattern]
        for m in matches:
            m = os.path.normpath(m)
            if m not in ("/", "") and not _excluded(m, settings.exclude):
                roots.add(m)
    ordered = sorted(roots, key=order_key)
    kept: list[str] = []
    for r in ordered:  # a nested root follows its ancestor in this order
        if kept and (r + "/").startswith(kept[-1].rstrip("/") + "/"):
            continue
        kept.append(r)
    return kept, notes


def walk_sources(
    settings: BackupSettings, roots: list[str], notes: list[str]
) -> Iterator[SourceEntry]:
    """Every entry under ``roots`` in archive order, one ``lstat`` each, nothing kept: memory
    does not grow with the number of files. Skipped paths are appended to ``notes``."""
    for root in roots:
        yield from _walk(root, settings.exclude, notes)


def _walk(path: str, exclude: tuple[str, ...], notes: list[str]) -> Iterator[SourceEntry]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        notes.append(f"skipped {path}: {exc.strerror}")
        return
    mode = st.st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        notes.append(f"skipped {path}: not a file, directory or symlink")
        return
    yield SourceEntry.from_stat(path, st)
    if stat.S_ISDIR(mode):
        try:
            children = sorted(os.listdir(path))
        except OSError as exc:
            notes.append(f"skipped contents of {path}: {exc.strerror}")
            return
        for child in children:
            full = os.path.join(path, child)
            if not _excluded(full, exclude):
                yield from _walk(full, exclude, notes)


def collect_sources(settings: BackupSettings) -> tuple[list[SourceEntry], list[str]]:
    """``walk_sources`` as a list (tests and small trees)."""
    roots, notes = resolve_roots(settings)
    return list(walk_sources(settings, roots, notes)), notes


class _CacheRecord(msgspec.Struct, array_like=True):
    name: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    sha256: str


_record_decoder = msgspec.json.Decoder(_CacheRecord)
_record_encoder = msgspec.json.Encoder()


class StatCache:
    """``name -> (size, mtime_ns, ctime_ns, inode) -> sha256``: one JSON line per file, in
    archive order, so a run reads the old cache as a merge alongside its walk and writes
    the new one as it goes; memory stays flat whatever the number of files.

    ctime is part of the key: it changes on any write or metadata change, and it cannot be
    set back by a program, so a file rewritten with its mtime restored is still re-hashed.
    Lookups must come in archive order (the walk's); an out-of-order lookup misses.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._old: IO[bytes] | None = open(path, "rb")
        except OSError:
            self._old = None
        self._current: _CacheRecord | None = None
        self._new: IO[bytes] | None = None

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _advance(self) -> None:
        self._current = None
        while self._old is not None:
            line = self._old.readline()
            if not line:
                self._old.close()
                self._old = None
                return
            try:
                self._current = _record_decoder.decode(line)
                return
            except msgspec.MsgspecError:
                continue  # a damaged line is a miss, not a failure

    def lookup(self, entry: SourceEntry) -> str | None:
        key = order_key(entry.name)
        if self._current is None:
            self._advance()
        while self._current is not None and order_key(self._current.name) < key:
            self._advance()
        rec = self._current
        if rec is None or rec.name != entry.name:
            return None
        if (rec.size, rec.mtime_ns, rec.ctime_ns, rec.ino) != (
            entry.size,
            entry.mtime_ns,
            entry.ctime_ns,
            entry.ino,
        ):
            return None
        return rec.sha256

    def store(self, name: str, st: os.stat_result, sha256: str) -> None:
        """Add a record to the new cache (in archive order; written on ``commit``)."""
        if self._new is None:
            self._new = open(self.path.with_suffix(".new"), "wb")
        rec = _CacheRecord(name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256)
        self._new.write(_record_encoder.encode(rec) + b"\n")

    def commit(self) -> None:
        """Replace the old cache by the records stored in this run."""
        self.close()
        new = self.path.with_suffix(".new")
        if new.exists():
            os.replace(new, self.path)

    def close(self) -> None:
        if self._old is not None:
            self._old.close()
            self._old = None
        if self._new is not None:
            self._new.close()
            self._new = None


_users: dict[int, str] = {}
_groups: dict[int, str] = {}


def user_name(uid: int) -> str:
    if uid not in _users:
        _users[uid] = platform.user_name(uid)
    return _users[uid]


def group_name(gid: int) -> str:
    if gid not in _groups:
        _groups[gid] = platform.group_name(gid)
    return _groups[gid]


def manifest_entry(entry: SourceEntry, sha256: str | None = None) -> ManifestEntry:
    """The manifest line for a source, from its ``lstat`` (and a file's hash when known)."""
    kind = entry.kind
    target = None
    if kind == "symlink":
        target = os.readlink(entry.path)
    return ManifestEntry(
        path=entry.name,
        type=kind,  # type: ignore[arg-type]
        mode=stat.S_IMODE(entry.mode),
        uid=entry.uid,
        gid=entry.gid,
        user=user_name(entry.uid),
        group=group_name(entry.gid),
        mtime_ns=entry.mtime_ns,
        size=entry.size if kind == "file" else 0,
        sha256=sha256 if kind == "file" else None,
        target=target,
    )


def quick_digest(
    settings: BackupSettings, cache_path: Path, recipients: Sequence[str]
) -> tuple[str | None, int, int, list[str]]:
    """Walk the sources with ``lstat`` only and the stat cache: (content digest, or None when
    some file would need reading; files; bytes; notes). The totals feed the progress."""
    roots, notes = resolve_roots(settings)
    digest: ContentDigest | None = ContentDigest(recipients)
    files = total = 0
    with StatCache(cache_path) as cache:
        for e in walk_sources(settings, roots, notes):
            sha = None
            if e.kind == "file":
                files += 1
                total += e.size
                if digest is not None:
                    sha = cache.lookup(e)
                    if sha is None:
                        digest = None
            if digest is not None:
                try:
                    digest.add(manifest_entry(e, sha))
                except OSError:
                    digest = None
    return (digest.hexdigest() if digest is not None else None), files, total, notes

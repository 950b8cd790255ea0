"""What a backup contains: the ``[backup]`` paths resolved to files, and the stat cache.

Pure filesystem reading, no network. The stat cache maps an archived path to
``(size, mtime_ns, ctime_ns, inode) -> sha256`` so an unchanged tree is re-checked with
``lstat`` calls alone instead of re-reading every byte.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import msgspec

from agent.backup.config import BackupSettings
from protocol.backup_archive import ManifestEntry

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


def collect_sources(settings: BackupSettings) -> tuple[list[SourceEntry], list[str]]:
    """Resolve paths/globs/excludes into entries sorted parents-first; and notes on what was
    skipped (sockets, fifos, devices, unreadable directories). An explicitly named path that
    does not exist raises ``SourceError``; a glob matching nothing is only a note."""
    found: dict[str, SourceEntry] = {}
    notes: list[str] = []

    def add(path: str) -> None:
        path = os.path.normpath(path)
        if path in ("/", "") or _excluded(path, settings.exclude):
            return
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
        name = path.lstrip("/")
        if name not in found:
            found[name] = SourceEntry.from_stat(path, st)
        if stat.S_ISDIR(mode):
            try:
                children = os.listdir(path)
            except OSError as exc:
                notes.append(f"skipped contents of {path}: {exc.strerror}")
                return
            for child in children:
                add(os.path.join(path, child))

    for pattern in settings.paths:
        if _GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                notes.append(f"{pattern}: matched nothing")
            for m in matches:
                add(m)
        else:
            if not os.path.lexists(pattern):
                raise SourceError(f"backup path not found: {pattern}")
            add(pattern)
    # Parents first: comparing with "/" as the lowest character orders by path components.
    entries = sorted(found.values(), key=lambda e: e.path.replace("/", "\x00"))
    return entries, notes


class _CacheRecord(msgspec.Struct, array_like=True):
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    sha256: str


class StatCache:
    """``name -> (size, mtime_ns, ctime_ns, inode, sha256)``, persisted as one JSON file.

    ctime is part of the key: it changes on any write or metadata change, and it cannot be
    set back by a program, so a file rewritten with its mtime restored is still re-hashed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: dict[str, _CacheRecord] = {}
        try:
            self._records = msgspec.json.decode(path.read_bytes(), type=dict[str, _CacheRecord])
        except (OSError, msgspec.MsgspecError):
            self._records = {}

    def lookup(self, entry: SourceEntry) -> str | None:
        rec = self._records.get(entry.name)
        if rec is None:
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
        self._records[name] = _CacheRecord(
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256
        )

    def retain(self, names: set[str]) -> None:
        for gone in set(self._records) - names:
            del self._records[gone]

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(self._records))
        os.replace(tmp, self.path)


_users: dict[int, str] = {}
_groups: dict[int, str] = {}


def user_name(uid: int) -> str:
    if uid not in _users:
        try:
            import pwd

            _users[uid] = pwd.getpwuid(uid).pw_name
        except (KeyError, ImportError):
            _users[uid] = ""
    return _users[uid]


def group_name(gid: int) -> str:
    if gid not in _groups:
        try:
            import grp

            _groups[gid] = grp.getgrgid(gid).gr_name
        except (KeyError, ImportError):
            _groups[gid] = ""
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


def cached_manifest(entries: list[SourceEntry], cache: StatCache) -> list[ManifestEntry] | None:
    """Manifest entries from the stat cache alone; None when any file would need reading."""
    out: list[ManifestEntry] = []
    for e in entries:
        digest = None
        if e.kind == "file":
            digest = cache.lookup(e)
            if digest is None:
                return None
        try:
            out.append(manifest_entry(e, digest))
        except OSError:
            return None
    return out

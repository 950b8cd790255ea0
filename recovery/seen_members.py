"""What a restore remembers of the members it has read, until the manifest arrives.

The manifest is the archive's last member (``docs/backup-format.md`` says why), so every
member read before it must be remembered to be checked against it. As Python objects (a
name, a record with its SHA-256 in hex) that cost about 460 bytes a member, and the
manifest decoded whole as much again (``docs/benchmarks.md``). Here each member is one
fixed record of 49 bytes in pages of ``bytearray``: a BLAKE2b digest (128 bits) of its
name, its type, and digests of its metadata (mode, owner) and of its content (size and
SHA-256, or link target). The digests are taken over a random prefix chosen per reader
(unknown to whoever made the archive, so no archive can be made whose names or contents
collide); about 0.4 µs each.

While members come in archive order (the writer's: parents first, then by path components,
``name.replace("/", "\\0")``), a duplicate cannot occur and the only member that can be a
file or symlink above the next one is the one just before it (every path below a member
sorts right after it). A member out of that order switches the reader to an index of every
name seen (a dict of digests, about 100 bytes a member), which answers the same questions
for any order.

The manifest's entries, streamed one at a time, are compared with the records in order; at
the first difference (an archive whose manifest is not in member order, or one that does not
match) an index of the records answers which check fails, with the same messages as ever.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from protocol.backup_archive import ManifestEntry
from recovery.refused import ArchiveRefused

_TYPES = {"file": 1, "dir": 2, "symlink": 3}
_NAMES = {v: k for k, v in _TYPES.items()}
_CODES = {v: bytes((v,)) for v in _TYPES.values()}
_blake = hashlib.blake2b
_KEY = 16
RECORD = _KEY + 1 + _KEY + _KEY
"""Bytes kept per member: name digest, type, metadata digest, content digest."""
_METAS = 4096
_CONTENT = slice(2 * _KEY + 1, RECORD)
_NO_CONTENT = bytes(_KEY)
PAGE = 16384
"""Records per page: pages are never copied to grow (a growing ``bytearray`` is, briefly
twice its size)."""


class SeenMembers:
    """``check(name, parts)`` before a member is written (duplicates, members below a file
    or symlink), ``add(...)`` once its content is hashed; ``matcher()`` for the manifest."""

    def __init__(self) -> None:
        self._key = os.urandom(16)
        self._pages: list[bytearray] = []
        self._count = 0
        self._last_order: str | None = None
        self._last_type = 0
        self._index: dict[bytes, int] | None = None
        """Name digest -> type, once a member came out of archive order."""
        self._metas: dict[tuple[int, int, int], bytes] = {}
        """Metadata digests by (mode, uid, gid): a tree has few such triples (at most
        ``_METAS`` kept), and each member and manifest entry needs one."""

    def __len__(self) -> int:
        return self._count

    def digest(self, text: str) -> bytes:
        return _blake(self._key + text.encode("utf-8", "surrogatepass"), digest_size=_KEY).digest()

    def check(self, name: str, parts: list[str]) -> None:
        """Refuse ``name`` if it was seen before or lies below a member that is not a
        directory."""
        if self._index is None:
            order = name.replace("/", "\0")
            last = self._last_order
            if last is None or order > last:
                if last is not None and self._last_type != 2 and order.startswith(last + "\0"):
                    raise ArchiveRefused(
                        f"refused member below a {_NAMES[self._last_type]}: {name!r}"
                    )
                self._last_order = order
                return
            if order == last:
                raise ArchiveRefused(f"refused duplicate member: {name!r}")
            self._build_index()
        assert self._index is not None
        if self.digest(name) in self._index:
            raise ArchiveRefused(f"refused duplicate member: {name!r}")
        for i in range(1, len(parts)):
            parent = self._index.get(self.digest("/".join(parts[:i])))
            if parent is not None and parent != 2:
                raise ArchiveRefused(f"refused member below a {_NAMES[parent]}: {name!r}")

    def _build_index(self) -> None:
        self._index = {}
        for i in range(self._count):
            record = self.at(i)
            self._index[record[:_KEY]] = record[_KEY]

    def add(self, record: bytes) -> int:
        """Remember a member that passed ``check``, by its :meth:`record`; its index."""
        if self._count % PAGE == 0:
            self._pages.append(bytearray(PAGE * RECORD))
        offset = self._count % PAGE * RECORD
        self._pages[-1][offset : offset + RECORD] = record
        self._count += 1
        self._last_type = record[_KEY]
        if self._index is not None:
            self._index[record[:_KEY]] = record[_KEY]
        return self._count - 1

    def hash_later(self, index: int, size: int) -> Callable[[str], None]:
        """What sets the content of the file added at ``index`` (recorded with
        ``hash_later``) once its SHA-256 is known: the small files' writer hashes a small
        file as it writes it. Until then the record holds no content digest, so a hash
        never taken fails the manifest's check."""

        def hashed(sha256: str) -> None:
            offset = index % PAGE * RECORD + _CONTENT.start
            digest = _blake(self._key + b"%d\0%a" % (size, sha256), digest_size=_KEY).digest()
            # Same length: the page is never resized, so a writer thread may write it
            # (the writer process's answers are handed over on the restoring thread).
            self._pages[index // PAGE][offset : offset + _KEY] = digest

        return hashed

    def record(
        self,
        name: str,
        type: str,
        mode: int,
        uid: int,
        gid: int,
        size: int = 0,
        sha256: str | None = None,
        target: str | None = None,
        *,
        hash_later: bool = False,
    ) -> bytes:
        """The fixed record of a member (or of a manifest entry, to compare). With
        ``hash_later``, a file's record without its content, set by :meth:`hash_later`."""
        code = _TYPES[type]
        content: bytes | None
        if hash_later:
            content = None
        elif code == 1:
            content = b"%d\0%a" % (size, sha256)
        elif code == 3:
            content = b"%a" % (target,)
        else:
            content = b""
        key = self._key
        if content is None:
            sealed = _NO_CONTENT
        else:
            sealed = _blake(key + content, digest_size=_KEY).digest()
        meta = self._metas.get((mode, uid, gid))
        if meta is None:
            meta = _blake(key + b"%d\0%d\0%d" % (mode, uid, gid), digest_size=_KEY).digest()
            if len(self._metas) < _METAS:
                self._metas[mode, uid, gid] = meta
        return b"".join(
            (
                self.digest(name),
                _CODES[code],
                meta,
                sealed,
            )
        )

    def matcher(self) -> ManifestMatch:
        return ManifestMatch(self)

    def at(self, index: int) -> bytes:
        """The record of the ``index``-th member read."""
        offset = index % PAGE * RECORD
        return bytes(self._pages[index // PAGE][offset : offset + RECORD])


class ManifestMatch:
    """``entry(e)`` for every manifest entry in manifest order, then ``finish()``: refuses a
    manifest entry missing from the archive, a member missing from the manifest, a path
    listed twice, or a type, size, SHA-256, mode, owner or link target that differs."""

    def __init__(self, seen: SeenMembers) -> None:
        self._seen = seen
        self._next = 0
        self._index: dict[bytes, int] | None = None
        self._matched = bytearray()

    def entry(self, e: ManifestEntry) -> None:
        seen = self._seen
        if e.type not in _TYPES:  # decode_manifest's Literal makes this unreachable
            raise ArchiveRefused(f"{e.path!r}: unknown type in the manifest")
        record = seen.record(e.path, e.type, e.mode, e.uid, e.gid, e.size, e.sha256, e.target)
        if self._index is None:
            if self._next < len(seen) and seen.at(self._next) == record:
                self._next += 1
                return
            self._index = {seen.at(i)[:_KEY]: i for i in range(len(seen))}
            self._matched = bytearray(len(seen))
            self._matched[: self._next] = b"\1" * self._next
        i = self._index.get(record[:_KEY])
        if i is None:
            raise ArchiveRefused(f"manifest entry missing from the archive: {e.path!r}")
        if self._matched[i]:
            raise ArchiveRefused("manifest lists a path twice")
        self._matched[i] = 1
        _compare(e, seen.at(i), record)

    def finish(self) -> None:
        if self._index is None:
            extra = self._next if self._next < len(self._seen) else None
        else:
            found = self._matched.find(0)
            extra = found if found >= 0 else None
        if extra is not None:
            raise ArchiveRefused(
                f"archive member not in the manifest (member {extra + 1} of the archive)"
            )


def _compare(e: ManifestEntry, seen: bytes, listed: bytes) -> None:
    """The message for the first field of the member's record that differs."""
    if seen[_KEY] != listed[_KEY]:
        raise ArchiveRefused(
            f"{e.path!r}: type {_NAMES[seen[_KEY]]} in tar, {e.type} in the manifest"
        )
    meta, content = slice(_KEY + 1, 2 * _KEY + 1), _CONTENT
    if e.type == "file" and seen[content] != listed[content]:
        raise ArchiveRefused(f"{e.path!r}: content does not match the manifest's SHA-256")
    if seen[meta] != listed[meta]:
        raise ArchiveRefused(f"{e.path!r}: metadata does not match the manifest")
    if e.type == "symlink" and seen[content] != listed[content]:
        raise ArchiveRefused(f"{e.path!r}: link target does not match the manifest")

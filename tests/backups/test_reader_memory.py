"""The reader's memory does not grow with the file count, and what it keeps instead of the
members and the manifest (``SeenMembers``' records, ``StreamedManifest``) refuses and
accepts exactly what whole objects did."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import tracemalloc

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.backup_archive import (
    Manifest,
    ManifestEntry,
    decode_manifest,
    encode_manifest,
    read_identities,
)
from recovery.extract import ArchiveRefused, read_archive
from recovery.manifest_stream import StreamedManifest
from recovery.seen_members import PAGE, SeenMembers
from tests.backups.test_malicious import RECIPIENT, SECRET, craft

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- SeenMembers against the dict of whole records it replaces -------------------------------

NAMES = st.sampled_from(["a", "b", "a/b", "a/b/c", "a/c", "b/a", "a b", "é", "a/b/c/d"])
TYPES = st.sampled_from(["file", "file", "dir", "dir", "symlink"])
MEMBERS = st.lists(st.tuples(NAMES, TYPES, st.integers(0, 2)), max_size=8)


def _reference_walk(members: list[tuple[str, str, int]]) -> int | None:
    """Index of the first member the old dict-based walk refused (None: all accepted)."""
    seen: dict[str, str] = {}
    for i, (name, type_, _) in enumerate(members):
        parts = name.split("/")
        if name in seen:
            return i
        for j in range(1, len(parts)):
            if seen.get("/".join(parts[:j]), "dir") != "dir":
                return i
        seen[name] = type_
    return None


def _walk(seen: SeenMembers, members: list[tuple[str, str, int]]) -> int | None:
    for i, (name, type_, v) in enumerate(members):
        try:
            seen.check(name, name.split("/"))
        except ArchiveRefused:
            return i
        seen.add(seen.record(name, type_, 0o644, v, 0, size=v, sha256=f"{v:064x}", target=f"t{v}"))
    return None


@SETTINGS
@given(MEMBERS)
def test_walk_checks_as_the_dict_did(members: list[tuple[str, str, int]]) -> None:
    assert _walk(SeenMembers(), members) == _reference_walk(members)


def _entry(name: str, type_: str, v: int) -> ManifestEntry:
    return ManifestEntry(
        path=name,
        type=type_,  # type: ignore[arg-type]
        mode=0o644,
        uid=v,
        size=v if type_ == "file" else 0,
        sha256=f"{v:064x}" if type_ == "file" else None,
        target=f"t{v}" if type_ == "symlink" else None,
    )


def _reference_match(members: list[tuple[str, str, int]], entries: list[ManifestEntry]) -> bool:
    listed = {e.path: e for e in entries}
    if len(listed) != len(entries) or set(listed) != {m[0] for m in members}:
        return False
    for m in members:  # the fields the old check compared, per type
        x, y = _entry(*m), listed[m[0]]
        if x.type != y.type or (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid):
            return False
        if x.type == "file" and (x.size, x.sha256) != (y.size, y.sha256):
            return False
        if x.type == "symlink" and x.target != y.target:
            return False
    return True


@SETTINGS
@given(MEMBERS, st.data())
def test_manifest_match_as_the_dict_did(members, data: st.DataObject) -> None:
    seen = SeenMembers()
    accepted = _walk(seen, members)
    members = members if accepted is None else members[:accepted]
    entries = [_entry(*m) for m in members]
    how = data.draw(st.sampled_from(["same", "shuffled", "dropped", "doubled", "changed"]))
    if how == "shuffled":
        entries = data.draw(st.permutations(entries))
    elif how == "dropped" and entries:
        del entries[data.draw(st.integers(0, len(entries) - 1))]
    elif how == "doubled" and entries:
        entries.append(entries[data.draw(st.integers(0, len(entries) - 1))])
    elif how == "changed" and entries:
        i = data.draw(st.integers(0, len(entries) - 1))
        field = data.draw(st.sampled_from(["uid", "mode", "size", "sha256", "target", "type"]))
        e = entries[i]
        if field == "type":
            e.type = data.draw(st.sampled_from(["file", "dir", "symlink"]))
        elif field in ("sha256", "target"):
            setattr(e, field, data.draw(st.sampled_from([None, "x", f"{7:064x}", "t0"])))
        else:
            setattr(e, field, getattr(e, field) + data.draw(st.integers(0, 1)))
    match = seen.matcher()
    try:
        for e in entries:
            match.entry(e)
        match.finish()
        ok = True
    except ArchiveRefused:
        ok = False
    assert ok == _reference_match(members, entries)


# --- StreamedManifest against decoding the manifest whole ------------------------------------

PATHS = st.lists(
    st.sampled_from([*'ab/é"\\{},: \n', '},{"path":', '"},{"path":"', "]}"]), max_size=8
).map("".join)
ENTRIES = st.lists(
    st.builds(
        ManifestEntry,
        path=PATHS,
        type=st.sampled_from(["file", "dir", "symlink"]),
        mode=st.integers(0, 0o7777),
        size=st.integers(0, 1 << 40),
        sha256=st.none() | st.just("ab" * 32),
        target=st.none() | PATHS,
    ),
    max_size=12,
)


def _blocks(data: bytes, sizes: list[int]):
    pos, i = 0, 0

    def read() -> bytes:
        nonlocal pos, i
        n = sizes[i % len(sizes)] if sizes else len(data)
        i += 1
        out = data[pos : pos + n]
        pos += len(out)
        return out

    return read


@SETTINGS
@given(ENTRIES, st.lists(st.integers(1, 64), max_size=5), st.booleans())
def test_streamed_manifest_reads_as_whole(entries, sizes: list[int], other_layout: bool) -> None:
    m = Manifest(created_at=1.5, server_id="srv", content_digest="d" * 64, entries=entries)
    if other_layout:  # another writer: sorted keys, spaces; or compact, entries first
        fields = msgspec.to_builtins(m)
        if len(entries) % 2:
            data = json.dumps(fields, sort_keys=True, indent=1).encode()
        else:
            fields = {"entries": fields.pop("entries"), **fields}
            data = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    else:
        data = encode_manifest(m)
    whole = decode_manifest(data)
    streamed = StreamedManifest(_blocks(data, sizes))
    assert list(streamed.entries()) == whole.entries
    assert streamed.head == msgspec.structs.replace(whole, entries=[])
    assert streamed.streamed == (not other_layout and len(entries) > 1)


@pytest.mark.parametrize(
    "cut",
    [
        lambda d: d[:-1],  # the closing brace gone
        lambda d: d[:-2] + b"]]}",  # a stray bracket
        lambda d: d.replace(b'"mode":', b'"mode":"', 1),  # a string left open
        lambda d: d.replace(b',{"path"', b',{"pa"', 1),  # an entry without its path
    ],
)
def test_streamed_manifest_refuses_malformed(cut) -> None:
    entries = [ManifestEntry(path=f"f{i}", type="file", mode=0o644) for i in range(3)]
    data = cut(encode_manifest(Manifest(entries=entries)))
    with pytest.raises(Exception) as raised:
        list(StreamedManifest(_blocks(data, [7])).entries())
    assert "malformed" in str(raised.value)


# --- memory -----------------------------------------------------------------------------------


def _many(n: int) -> bytes:
    """An export of 8 MiB (the reader's buffers full whatever ``n``), then ``n`` files."""

    def add(tar: tarfile.TarFile) -> list[ManifestEntry]:
        entries = []
        for i in range(-1, n):
            name = f"etc/site-{i // 500:03d}/camera-{i:06d}.xml"  # archive order
            data = b"%d" % i if i >= 0 else os.urandom(8 << 20)
            if i < 0:
                name = "etc/export.sql"
            ti = tarfile.TarInfo(name)
            ti.mode, ti.size = 0o644, len(data)
            tar.addfile(ti, io.BytesIO(data))
            sha = hashlib.sha256(data).hexdigest()
            entries.append(
                ManifestEntry(path=name, type="file", mode=0o644, size=len(data), sha256=sha)
            )
        return entries

    return craft(add)


def _traced_peak(blob: bytes) -> int:
    tracemalloc.start()
    try:
        # one thread: no read-ahead queue whose filling would vary from run to run
        result = read_archive(
            io.BytesIO(blob), read_identities(SECRET), recipients=[RECIPIENT], threads=1
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert result.files == result.entries


def test_verify_memory_does_not_grow_with_the_file_count() -> None:
    """20,000 files more cost the reader under 4 MiB (measured: 2.5 MiB: a page of records,
    49 bytes each, and the manifest's read buffer filling up to its two 1 MiB blocks);
    whole records and the manifest decoded whole cost 18 MiB more."""
    small, large = _traced_peak(_many(5_000)), _traced_peak(_many(25_000))
    assert large - small < 4 << 20, (small, large)


def test_a_hash_taken_later_is_checked_like_one_taken_at_once() -> None:
    """Small files restored are recorded before their SHA-256 is known and hashed by the
    writing threads (``hash_later``), in any order, across pages of records: the manifest
    check sees them as if hashed in place, and a hash never taken fails it."""
    n = PAGE + 5
    entries = [
        ManifestEntry(path=f"f{i:05d}", type="file", mode=0o644, size=i, sha256=f"{i:064x}")
        for i in range(n)
    ]

    def recorded(unhashed: int | None) -> SeenMembers:
        seen = SeenMembers()
        later = []
        for e in entries:
            seen.check(e.path, [e.path])
            index = seen.add(seen.record(e.path, "file", 0o644, 0, 0, hash_later=True))
            later.append((seen.hash_later(index, e.size), e))
        workers = [
            threading.Thread(target=lambda part=part: [h(e.sha256) for h, e in part])
            for part in (later[::-2], later[-2::-2])  # from the end, two threads
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        if unhashed is not None:
            seen.hash_later(unhashed, entries[unhashed].size)("f" * 64)  # not its hash
        return seen

    match = recorded(None).matcher()
    for e in entries:
        match.entry(e)
    match.finish()
    for unhashed in (0, PAGE - 1, PAGE, n - 1):
        match = recorded(unhashed).matcher()
        with pytest.raises(ArchiveRefused, match="content does not match the manifest's SHA-256"):
            for e in entries:
                match.entry(e)

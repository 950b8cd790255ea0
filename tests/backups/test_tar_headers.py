"""The archive writer's direct ustar headers are what ``tarfile`` writes."""

from __future__ import annotations

import tarfile

import pytest

from agent.backup.archive import _header, _tarinfo, _ustar
from protocol.backup_archive import ManifestEntry

CASES = [
    ManifestEntry(
        path="etc/vms/agent.toml", type="file", mode=0o640, size=812, mtime_ns=1_700_000_000 * 10**9
    ),
    ManifestEntry(
        path="etc/vms",
        type="dir",
        mode=0o2775,
        uid=1000,
        gid=1000,
        user="vms",
        group="vms",
        mtime_ns=1_600_000_000_999_999_999,
    ),
    ManifestEntry(
        path="etc/vms/current",
        type="symlink",
        mode=0o777,
        target="agent.toml",
        user="root",
        group="root",
        mtime_ns=0,
    ),
    ManifestEntry(path="x" * 100, type="file", mode=0o4755, size=8**11 - 1, mtime_ns=5 * 10**9),
    ManifestEntry(
        path="big", type="file", mode=0o600, uid=8**7 - 1, gid=0, size=0, mtime_ns=8**11 * 10**9 - 1
    ),
]

PAX_ONLY = [
    ManifestEntry(path="x" * 101, type="file", mode=0o644),
    ManifestEntry(path="ünïcödé", type="file", mode=0o644),
    ManifestEntry(path="a", type="file", mode=0o644, size=8**11),
    ManifestEntry(path="a", type="file", mode=0o644, uid=8**7),
    ManifestEntry(path="l", type="symlink", mode=0o777, target="t" * 101),
    ManifestEntry(path="new\nline", type="file", mode=0o644, user="ü"),
]


@pytest.mark.parametrize("entry", CASES, ids=lambda e: e.path[:20])
def test_fast_header_equals_tarfile(entry: ManifestEntry) -> None:
    fast = _ustar(entry)
    assert fast is not None
    ref = _tarinfo(entry).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    # Byte for byte outside the device fields (NUL or zeros, by Python version) and the
    # checksum over them; frombuf checks the checksum and decodes every field.
    assert fast[:148] == ref[:148] and fast[156:329] == ref[156:329] and fast[345:] == ref[345:]
    a = tarfile.TarInfo.frombuf(fast, "utf-8", "surrogateescape")
    b = tarfile.TarInfo.frombuf(ref, "utf-8", "surrogateescape")
    assert a.get_info() == b.get_info()


@pytest.mark.parametrize("entry", PAX_ONLY, ids=lambda e: e.path[:20])
def test_pax_cases_fall_back_to_tarfile(entry: ManifestEntry) -> None:
    assert _ustar(entry) is None
    assert len(_header(entry)) > tarfile.BLOCKSIZE  # an extended header comes first

"""The restore's own parser of common tar headers reads every header exactly as
``tarfile``'s does, and leaves every other one (and every damaged one) to it."""

from __future__ import annotations

import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery.extract import _BoundedTarInfo, _byte_sum

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname")
FIELDS += ("uname", "gname", "devmajor", "devminor")

NAMES = st.text(st.sampled_from("ab/é. \\"), min_size=1, max_size=140)


def _parse(cls: type[tarfile.TarInfo], buf: bytes) -> tuple:
    try:
        info = cls.frombuf(buf, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        return ("refused", type(exc))
    return (*(getattr(info, f) for f in FIELDS), getattr(info, "_sparse_structs", None))


@SETTINGS
@given(
    NAMES,
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
    st.integers(0, 0o7777),
    st.integers(0, 1 << 40),
    st.integers(0, 1 << 24),
    st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=3),
)
def test_headers_read_as_tarfile_reads_them(name, type_, mode, size, uid, fmt, flips) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = type_, mode, uid, uid // 3, 1764000000
    info.size = size if type_ == tarfile.REGTYPE else 0
    info.linkname = "target" if type_ in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    info.uname, info.gname = "root", "vms"
    try:
        buf = bytearray(info.tobuf(fmt, "utf-8", "surrogateescape")[: tarfile.BLOCKSIZE])
    except ValueError:
        return  # a name this format cannot hold in one header
    for at, value in flips:  # damage: bad checksums, stray bytes in number fields, ...
        buf[at] = value
    assert _parse(_BoundedTarInfo, bytes(buf)) == _parse(tarfile.TarInfo, bytes(buf))


def test_end_of_archive_and_short_blocks_as_tarfile() -> None:
    for buf in (bytes(512), b"", b"x" * 100):
        assert _parse(_BoundedTarInfo, buf) == _parse(tarfile.TarInfo, buf)


NUMBER_FIELDS = [(100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (329, 337), (337, 345)]


@SETTINGS
@given(
    st.sampled_from(NUMBER_FIELDS),
    st.lists(st.sampled_from(b"0123456789 \0_+-x\x80"), min_size=12, max_size=12),
    st.sampled_from([tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT]),
)
def test_number_fields_read_as_tarfile_reads_them(field, content, fmt) -> None:
    """Digits, blanks, NULs and stray bytes anywhere in a number field, the checksum made
    right again: read as tarfile reads them (or refused as it refuses them)."""
    info = tarfile.TarInfo("etc/vms/camera-01.xml")
    info.size, info.mode, info.mtime = 812, 0o640, 1764000000
    buf = bytearray(info.tobuf(fmt, "utf-8", "surrogateescape")[: tarfile.BLOCKSIZE])
    start, stop = field
    buf[start:stop] = bytes(content[: stop - start])
    buf[148:156] = b"%06o\0 " % (256 + sum(buf) - sum(buf[148:156]))
    assert _parse(_BoundedTarInfo, bytes(buf)) == _parse(tarfile.TarInfo, bytes(buf))


@SETTINGS
@given(st.binary(min_size=512, max_size=512) | st.sampled_from([bytes(512), b"\xff" * 512]))
def test_byte_sum_is_the_sum(buf: bytes) -> None:
    assert _byte_sum(buf) == sum(buf)

"""The agent's archive file (``agent.backup.archive_file``): whole chunks written around
the page cache by a thread of their own, the usual way where the file system refuses
that, and a full disk reported, never a short file taken for a whole one. The kernel's
page cache is the edge here: the fallback's tests record what is asked of it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agent.backup import archive_file
from agent.backup.archive_file import BLOCK, ArchiveFile
from tests.backups.archive_helpers import record_fadvise, takes_direct

CHUNK = 16 * BLOCK


def _chunks(total: int) -> list[bytes]:
    data = os.urandom(total)
    return [data[at : at + CHUNK] for at in range(0, total, CHUNK)]


def _write(out: ArchiveFile, chunks: list[bytes]) -> None:
    offset = 0
    for chunk in chunks:
        out.write_chunk(offset, bytearray(chunk))
        offset += len(chunk)


@pytest.mark.parametrize("tail", [0, 1, BLOCK - 1, BLOCK + 7])
@pytest.mark.parametrize("bounce", [archive_file.BOUNCE, 3 * BLOCK])
def test_the_file_holds_every_chunk_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: int, bounce: int
) -> None:
    """Whole blocks around the page cache (copied into the aligned buffer a piece at a
    time when a chunk is larger than it), the last chunk's odd end through it."""
    monkeypatch.setattr(archive_file, "BOUNCE", bounce)
    chunks = _chunks(5 * CHUNK + tail)
    path = tmp_path / "backup-1.age.part"
    with ArchiveFile(path) as out:
        _write(out, chunks)
    assert path.read_bytes() == b"".join(chunks)
    assert out.end == path.stat().st_size
    assert out.direct is False  # closed
    with ArchiveFile(tmp_path / "x") as probe:
        assert probe.direct == takes_direct(tmp_path)


def test_where_o_direct_is_refused_at_the_first_write_the_page_cache_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that opens with O_DIRECT but refuses the write (EINVAL): the same
    bytes the usual way, released behind the writer as before."""
    real = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if fcntl_direct(fd):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    advised = record_fadvise(monkeypatch)
    chunks = _chunks(12 * CHUNK + 100)
    path = tmp_path / "backup-2.age.part"
    out = ArchiveFile(path, direct=True)
    _write(out, chunks)
    out.close()
    assert path.read_bytes() == b"".join(chunks)
    if refused:  # the file system took O_DIRECT at open: refused once, then never tried
        assert refused == [0]
    # every chunk's write asked for the writeback, and the release of what lies behind
    assert len(advised) == len(chunks)
    assert max(end for _, end in advised) == len(b"".join(chunks))


def test_without_o_direct_the_file_is_released_behind_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive_file, "BEHIND", 2 * CHUNK)
    advised = record_fadvise(monkeypatch)
    chunks = _chunks(10 * CHUNK)
    path = tmp_path / "backup-3.age.part"
    with ArchiveFile(path, direct=False) as out:
        assert not out.direct
        _write(out, chunks)
    assert path.read_bytes() == b"".join(chunks)
    # each call reaches back over what the calls before asked to write back, no further
    for n, (start, end) in enumerate(advised):
        assert end == (n + 1) * CHUNK
        assert start == max(0, n * CHUNK - 2 * CHUNK)


def test_a_full_disk_is_an_error_never_a_short_archive(tmp_path: Path, tmpfs) -> None:
    disk = tmpfs(tmp_path / "disk", "256k")
    path = disk / "backup-4.age.part"
    out = ArchiveFile(path)
    with pytest.raises(OSError) as raised:
        try:
            _write(out, _chunks(20 * CHUNK))  # 1.25 MiB onto 256 KiB
        finally:
            out.close()  # raises it too, whether a write did or not
    assert raised.value.errno == errno.ENOSPC
    assert str(path) in str(raised.value)
    out.close()  # closing again neither hangs nor raises it twice


def test_chunks_come_whole_and_in_order(tmp_path: Path) -> None:
    with ArchiveFile(tmp_path / "b") as out:
        out.write_chunk(0, bytearray(CHUNK))
        with pytest.raises(ValueError, match="ends at"):
            out.write_chunk(0, bytearray(CHUNK))
        out.write_chunk(CHUNK, bytearray(CHUNK + 1))
        with pytest.raises(ValueError, match="not a multiple"):
            out.write_chunk(2 * CHUNK + 1, bytearray(CHUNK))
    assert (tmp_path / "b").stat().st_size == 2 * CHUNK + 1


def fcntl_direct(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)

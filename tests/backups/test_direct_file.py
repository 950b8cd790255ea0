"""A large restored file (``recovery.direct_file``): written around the page cache by a
thread of its own, through it where the file system refuses that, and a full disk
reported, never a short file left looking whole."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from recovery import direct_file
from recovery.direct_file import BLOCK, BUFFER, DirectFile
from tests.backups.archive_helpers import takes_direct


def _restore(path: Path, data: bytes, piece: int) -> DirectFile:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        out = DirectFile(fd)
        try:
            for at in range(0, len(data), piece):
                out.write(memoryview(data)[at : at + piece])
        finally:
            out.close()
    finally:
        os.close(fd)
    return out


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BUFFER, BUFFER + 7, 3 * BUFFER + BLOCK + 1])
def test_the_file_holds_every_byte_in_order(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "export.sql"
    out = _restore(path, data, 300_001)  # pieces that straddle the buffers
    assert path.read_bytes() == data
    # whole blocks went around the page cache where the file system takes that; only a
    # tail that is not a whole block takes the descriptor back to the page cache
    assert out.direct == (takes_direct(tmp_path) and size % BLOCK == 0)


def test_where_o_direct_is_refused_at_the_first_write_the_page_cache_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    released = _Released()
    monkeypatch.setattr(direct_file.DropBehind, "written", released)
    data = os.urandom(5 * BUFFER + 123)
    path = tmp_path / "export.sql"
    out = _restore(path, data, BUFFER // 3)
    assert path.read_bytes() == data
    assert not out.direct
    if refused:  # the file system took O_DIRECT at fcntl: refused once, never tried again
        assert refused == [0]
    assert released.total == len(data)  # every byte went by the drop-behind path


def test_a_full_disk_is_an_error(tmp_path: Path, tmpfs) -> None:
    disk = tmpfs(tmp_path / "disk", "256k")
    with pytest.raises(OSError) as raised:
        _restore(disk / "export.sql", os.urandom(3 * BUFFER), BUFFER)
    assert raised.value.errno == errno.ENOSPC


class _Released:
    """Stands in for ``DropBehind.written``: counts the bytes written the usual way."""

    def __init__(self) -> None:
        self.total = 0

    def __get__(self, obj: object, owner: type) -> _Released:
        return self

    def __call__(self, n: int) -> None:
        self.total += n

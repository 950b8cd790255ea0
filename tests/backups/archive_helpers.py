"""Shared by the backup tests: write an archive of a tree, compare trees, record what is
asked of the page cache."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from agent.backup.archive import write_archive
from agent.backup.config import parse_backup_config
from agent.backup.sources import collect_sources
from protocol.backup_archive import ArchiveResult


def archive_tree(
    src: Path, recipients: list[str], server_id: str = "srv-1", threads: int = 2
) -> tuple[bytes, ArchiveResult]:
    entries, _ = collect_sources(parse_backup_config({"paths": [str(src)]}))
    out = io.BytesIO()
    result = write_archive(entries, out, recipients, server_id=server_id, threads=threads)
    return out.getvalue(), result


def snapshot(root: Path, exact_mtime: bool = True) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, mtime, content or link target) for a whole tree;
    mtime in ns, or in whole seconds when not ``exact_mtime``."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            mtime = st.st_mtime_ns if exact_mtime else st.st_mtime_ns // 1_000_000_000
            meta = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", *meta, mtime, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", *meta, mtime, None)
            else:
                out[rel] = ("file", *meta, mtime, p.read_bytes())
    return out


def record_fadvise(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """``(start, end)`` of every ``POSIX_FADV_DONTNEED`` asked for (the call still runs)."""
    calls: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        calls.append((offset, offset + length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    return calls


def takes_direct(directory: Path) -> bool:
    """Whether the file system under ``directory`` takes an aligned ``O_DIRECT`` write."""
    import mmap

    probe = directory / "o-direct-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    try:
        with mmap.mmap(-1, 4096) as page:
            os.pwrite(fd, page, 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        probe.unlink()

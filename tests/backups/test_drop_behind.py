"""Bulk writes and reads that leave the page cache behind them: a staged upload on the
collector (``collector.backups.staging.write_chunk``), a large restored file
(``recovery.drop_behind``), and a download from the collector's local store (the agent's
archive file: ``test_archive_file``). The
kernel's page cache is the edge here: the tests record what is asked of it and check that
every byte stays as written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.backups import staging
from collector.backups.objectstore import LocalObjectStore
from recovery import drop_behind
from tests.backups.archive_helpers import record_fadvise

STEP = 64 * 1024
"""The release step the writers' tests set (their ``STEP``; ``BEHIND`` four of them)."""


def _small_steps(monkeypatch: pytest.MonkeyPatch, module: object) -> list[tuple[int, int]]:
    """``module``'s writer releasing every :data:`STEP`, four steps behind; the calls."""
    monkeypatch.setattr(module, "STEP", STEP)
    monkeypatch.setattr(module, "BEHIND", 4 * STEP)
    return record_fadvise(monkeypatch)


def _released_but_the_last_step(calls: list[tuple[int, int]], end: int) -> None:
    """Everything written up to ``end`` asked to be released, but at most one step."""
    assert calls, "nothing was released"
    last_end = max(stop for _, stop in calls)
    assert end - last_end < STEP  # at most one step not yet asked for
    assert _covered(calls, last_end)


def _covered(calls: list[tuple[int, int]], end: int) -> bool:
    """Whether the ranges asked for cover ``[0, end)``."""
    at = 0
    for start, stop in sorted(calls):
        if start > at:
            return False
        at = max(at, stop)
    return at >= end


def test_staged_chunks_are_released_behind_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_fadvise(monkeypatch)
    part = tmp_path / "up.part"
    chunks = [os.urandom(64 * 1024) for _ in range(12)]
    offset = 0
    for chunk in chunks:
        staging.write_chunk(part, offset, chunk)
        offset += len(chunk)
    assert part.read_bytes() == b"".join(chunks)
    # each call reaches back over the chunks before it, and the last covers the newest
    assert _covered(calls, offset)
    assert all(
        stop - start <= (staging.DROP_BEHIND_CHUNKS + 1) * 64 * 1024 for start, stop in calls
    )


def test_a_rewritten_chunk_is_released_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed upload cuts the file back and writes from there: the new bytes count."""
    calls = record_fadvise(monkeypatch)
    part = tmp_path / "up.part"
    staging.write_chunk(part, 0, b"a" * 4096)
    staging.write_chunk(part, 4096, b"b" * 4096)
    staging.write_chunk(part, 4096, b"c" * 4096)  # never acknowledged: written again
    assert part.read_bytes() == b"a" * 4096 + b"c" * 4096
    assert calls[-1] == (0, 8192)


def test_a_large_restored_file_is_released_as_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _small_steps(monkeypatch, drop_behind)
    path = tmp_path / "export.sql"
    data = os.urandom(40 * 10_000)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        dropped = drop_behind.DropBehind(fd)
        for at in range(0, len(data), 10_000):
            os.write(fd, data[at : at + 10_000])
            dropped.written(10_000)
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    _released_but_the_last_step(calls, len(data))


def test_a_downloaded_object_is_released_behind_the_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(10 * 4096 + 123)

    async def roundtrip() -> bytes:
        await store.put_bytes("s/b.age", data)
        calls.clear()  # the put's own writes are not what is checked here
        return b"".join([c async for c in store.get("s/b.age", chunk_size=4096)])

    calls = record_fadvise(monkeypatch)
    assert asyncio.run(roundtrip()) == data
    assert _covered(calls, len(data))

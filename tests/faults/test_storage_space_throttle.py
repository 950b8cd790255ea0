"""A write request reads the free space at most once a second: a disk that fills is
refused within that second, and back inside it once space is freed; the stat checks
still run on every request."""

from __future__ import annotations

import shutil
from pathlib import Path

from collector.health import storage_health
from collector.health.storage_health import SPACE_EVERY_S, StorageHealth
from tests.faults.inject import fill

RESERVE = 4 * 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FileDb:
    """What the checks read of a database: its file's path."""

    def __init__(self, path: Path) -> None:
        self.path = path


def health_on(directory: Path, clock: Clock) -> StorageHealth:
    data = directory / "data"
    data.mkdir()
    (data / "vigil.db").write_bytes(b"")
    return StorageHealth(data, FileDb(data / "vigil.db"), report_reserve=RESERVE, clock=clock)


def test_a_disk_that_fills_is_refused_within_the_throttle_window(tmpfs, tmp_path: Path) -> None:
    disk = tmpfs(tmp_path / "disk", "32m")
    clock = Clock()
    health = health_on(disk, clock)
    assert health.refusal(upload=False) is None

    filler = fill(disk, 1024 * 1024)
    clock.now += SPACE_EVERY_S
    refused = health.refusal(upload=False)
    assert refused is not None
    status, code, reason = refused
    assert (status, code) == (503, "storage_unavailable")
    assert reason.startswith("disk_space:") and "report reserve" in reason

    filler.unlink()
    assert health.refusal(upload=False) is not None  # the reading is under a second old
    clock.now += SPACE_EVERY_S
    assert health.refusal(upload=False) is None


def test_the_background_check_reads_the_space_now(tmpfs, tmp_path: Path) -> None:
    disk = tmpfs(tmp_path / "disk", "32m")
    clock = Clock()
    health = health_on(disk, clock)
    assert health.refusal(upload=False) is None
    fill(disk, 1024 * 1024)
    assert not health.cheap()["disk_space"].ok  # what the background round runs
    assert health.refusal(upload=False) is not None  # no second to wait: it was just read


def test_a_deleted_data_directory_is_refused_at_the_next_request(tmp_path: Path) -> None:
    clock = Clock()
    health = health_on(tmp_path, clock)
    assert health.refusal(upload=False) is None
    shutil.rmtree(tmp_path / "data")
    refused = health.refusal(upload=False)
    assert refused is not None and "deleted" in refused[2]


def test_the_space_is_read_once_per_window(monkeypatch, tmp_path: Path) -> None:
    clock = Clock()
    health = health_on(tmp_path, clock)
    reads: list[Path] = []
    real = storage_health.free_bytes

    def counted(path: Path) -> int:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(storage_health, "free_bytes", counted)
    for _ in range(50):
        assert health.refusal(upload=False) is None
    assert len(reads) == 1
    clock.now += SPACE_EVERY_S
    assert health.refusal(upload=False) is None
    assert len(reads) == 2

"""The restore's pool of file writers (``recovery/file_writers.py``): every queued file
lands whole with its mode and owner, the first error reaches the reading thread, the
queue never holds more than its bound, and the threads end with ``close``."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.net import wait_until
from recovery.file_writers import FileWriters


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=70_000), min_size=1, max_size=40),
    workers=st.integers(min_value=1, max_value=4),
)
def test_every_file_lands_whole_with_its_mode(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], workers: int
) -> None:
    root = tmp_path_factory.mktemp("w")
    want = {}
    with FileWriters(workers=workers, max_bytes=100_000) as writers:
        for i, size in enumerate(sizes):
            data = os.urandom(size)
            mode = (0o600, 0o644, 0o755, 0o4755, 0o666)[i % 5]
            # no owner: the mode given at creation where the umask allows (0o666 does not)
            owner = (os.getuid(), os.getgid()) if i % 3 == 0 else None
            writers.write(root / f"f{i}", data, mode, owner)
            want[f"f{i}"] = (data, mode)
        writers.finish()
        for name, (data, mode) in want.items():
            assert (root / name).read_bytes() == data
            assert stat.S_IMODE((root / name).stat().st_mode) == mode


def test_first_error_reaches_the_reader_and_stops_the_writes(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # exclusive create refuses it
    writers = FileWriters(workers=2)
    try:
        writers.write(tmp_path / "taken", b"x", 0o644, None)
        with pytest.raises(FileExistsError):
            writers.finish()
        with pytest.raises(FileExistsError):
            writers.write(tmp_path / "after", b"y", 0o644, None)
        assert not (tmp_path / "after").exists()
    finally:
        writers.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("restore-writer")]


def test_a_symlink_in_place_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "link").symlink_to(target)
    with FileWriters(workers=1) as writers:
        writers.write(tmp_path / "link", b"x", 0o644, None)
        with pytest.raises(FileExistsError):
            writers.finish()
    assert not target.exists()


def test_queued_bytes_stay_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one worker held at a gate: the reader stops once the bound would be passed,
    and goes on when the worker writes (a file larger than the bound passes alone)."""
    import recovery.file_writers as fw

    gate = threading.Event()
    real = fw.write_file
    queued: list[int] = []

    def held(*args: object) -> None:
        gate.wait()
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fw, "write_file", held)
    with FileWriters(workers=1, max_bytes=1000) as writers:

        def reader() -> None:
            for i in range(5):
                writers.write(tmp_path / f"f{i}", bytes(400), 0o644, None)
                queued.append(writers._pending_bytes)
            writers.write(tmp_path / "big", bytes(5000), 0o644, None)
            writers.finish()

        t = threading.Thread(target=reader)
        t.start()
        wait_until(lambda: len(queued) >= 2, 30, what="two files queued")
        t.join(0.3)  # time to queue a third, were there room
        assert t.is_alive() and queued == [400, 800]  # 1,200 would pass the bound
        gate.set()
        t.join(30)
        assert not t.is_alive()
    assert max(queued) <= 1000
    assert [(tmp_path / f"f{i}").stat().st_size for i in range(5)] == [400] * 5
    assert (tmp_path / "big").stat().st_size == 5000


def test_small_files_go_over_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hundred small files reach the workers as four hand-overs (32, 32, 32, then the
    rest at ``finish``), not a hundred: one wake-up a batch, not one a file."""
    import recovery.file_writers as fw

    gate = threading.Event()
    real = fw.write_file
    monkeypatch.setattr(fw, "write_file", lambda *a: (gate.wait(), real(*a)))
    with FileWriters(workers=1) as writers:
        for i in range(100):
            writers.write(tmp_path / f"f{i}", b"x" * 10, 0o644, None)
        # the worker holds the first batch at the gate; the next two wait in the queue
        wait_until(lambda: writers._busy == 1, 30, what="the first batch taken")
        assert [len(batch) for batch, _ in writers._jobs] == [fw.BATCH_FILES] * 2
        assert len(writers._batch) == 100 - 3 * fw.BATCH_FILES
        gate.set()
        writers.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"f{i}" for i in range(100))


def test_hashed_is_told_each_files_sha256_on_a_worker(tmp_path: Path) -> None:
    """A small file's SHA-256 is taken by the worker that writes it (the restore's reading
    thread hands the hashing over), once per file, before the file is written."""
    told: dict[str, tuple[str, str, bool]] = {}
    calls: list[str] = []

    def hashed_for(name: str) -> Callable[[str], None]:
        def hashed(sha256: str) -> None:
            calls.append(name)
            told[name] = (sha256, threading.current_thread().name, (tmp_path / name).exists())

        return hashed

    want = {f"f{i}": os.urandom(i * 997) for i in range(60)}
    with FileWriters(workers=3, max_bytes=50_000) as writers:
        for name, data in want.items():
            writers.write(tmp_path / name, data, 0o644, None, hashed_for(name))
        writers.write(tmp_path / "unhashed", b"z", 0o644, None)
        writers.finish()
    assert sorted(calls) == sorted(want)
    assert told == {
        name: (hashlib.sha256(data).hexdigest(), told[name][1], False)
        for name, data in want.items()
    }
    assert {thread for _, thread, _ in told.values()} <= {f"restore-writer-{i}" for i in range(3)}
    assert (tmp_path / "unhashed").read_bytes() == b"z"

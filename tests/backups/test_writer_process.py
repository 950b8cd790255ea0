"""The restore's writer process (``recovery/writer_process.py``): every file lands whole with
its mode and owner and its SHA-256 comes back, however the ring wraps; the first error
reaches the restoring process and nothing is written after it; ``close`` stops the writer
at once; a writer whose restoring process is killed ends by itself."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.net import wait_until
from recovery import writer_process
from recovery.file_writers import FileWriters
from recovery.writer_process import WriterProcess, open_writers


def _alive(pid: int) -> bool:
    """A process still there and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _told(into: dict[str, str], name: str) -> Callable[[str], None]:
    def hashed(sha256: str) -> None:
        assert name not in into, "told twice"
        into[name] = sha256

    return hashed


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=70_000), min_size=1, max_size=40))
def test_every_file_lands_whole_with_its_mode_and_hash(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int]
) -> None:
    root = tmp_path_factory.mktemp("w")
    want, told = {}, {}
    # A ring of 100,000 bytes: files of up to 70,000 wrap around it and wait for room.
    with WriterProcess(max_bytes=100_000) as writers:
        for i, size in enumerate(sizes):
            data = os.urandom(size)
            mode = (0o600, 0o644, 0o755, 0o4755, 0o666)[i % 5]
            owner = (os.getuid(), os.getgid()) if i % 3 == 0 else None
            writers.write(root / f"f{i}", data, mode, owner, _told(told, f"f{i}"))
            want[f"f{i}"] = (data, mode)
        writers.finish()
    for name, (data, mode) in want.items():
        assert (root / name).read_bytes() == data
        assert stat.S_IMODE((root / name).stat().st_mode) == mode
    assert told == {name: hashlib.sha256(data).hexdigest() for name, (data, _) in want.items()}


def test_many_tiny_files_wait_for_answers_and_all_land(tmp_path: Path) -> None:
    """More files than may wait unanswered (``MAX_FILES``), some without ``hashed``."""
    count = writer_process.MAX_FILES * 3 + 7
    told: dict[str, str] = {}
    with WriterProcess() as writers:
        for i in range(count):
            hashed = _told(told, f"f{i}") if i % 2 else None
            writers.write(tmp_path / f"f{i}", b"%d" % i, 0o644, None, hashed)
        writers.finish()
        writers.write(tmp_path / "after-finish", b"more", 0o644, None)  # it goes on
        writers.finish()
    assert len(list(tmp_path.iterdir())) == count + 1
    assert (tmp_path / "f1234").read_bytes() == b"1234"
    assert told == {f"f{i}": hashlib.sha256(b"%d" % i).hexdigest() for i in range(1, count, 2)}


def test_first_error_reaches_the_restore_and_stops_the_writes(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # exclusive create refuses it
    writers = WriterProcess()
    pid = writers._pid
    try:
        writers.write(tmp_path / "taken", b"x", 0o644, None)
        writers.write(tmp_path / "queued-behind", b"x", 0o644, None)
        with pytest.raises(FileExistsError):
            writers.finish()
        with pytest.raises(FileExistsError):
            writers.write(tmp_path / "after", b"y", 0o644, None)
        assert not (tmp_path / "after").exists()
        assert not (tmp_path / "queued-behind").exists()
    finally:
        writers.close()
    assert not _alive(pid)


def test_a_symlink_in_place_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "link").symlink_to(target)
    with WriterProcess() as writers:
        writers.write(tmp_path / "link", b"x", 0o644, None)
        with pytest.raises(FileExistsError):
            writers.finish()
    assert not target.exists()


def test_close_before_finish_stops_the_writer_at_once(tmp_path: Path) -> None:
    """A restore that fails stops its writer with files still queued: none of them lands,
    not even later. (The writer is held stopped while they are queued, so they are.)"""
    writers = WriterProcess()
    pid = writers._pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(100):
            writers.write(tmp_path / f"f{i}", os.urandom(4000), 0o644, None)
    finally:
        writers.close()
    assert not _alive(pid)
    assert list(tmp_path.iterdir()) == []


def test_the_writer_ends_when_the_restoring_process_is_killed(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from recovery.writer_process import WriterProcess\n"
        "w = WriterProcess()\n"
        f"w.write({str(tmp_path / 'one')!r}, b'1', 0o644, None)\n"
        "w.finish()\n"
        "print(w._pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    pid = int(run.stdout.split()[0])
    # Its parent gone, the writer reads the end of its pipe and exits (init reaps it).
    wait_until(lambda: not _alive(pid), timeout=10)
    assert (tmp_path / "one").read_bytes() == b"1"


def test_a_file_larger_than_the_ring_is_refused(tmp_path: Path) -> None:
    with WriterProcess(max_bytes=4096) as writers:
        with pytest.raises(ValueError, match="larger than the writer's ring"):
            writers.write(tmp_path / "big", b"x" * 4097, 0o644, None)
        writers.write(tmp_path / "fits", b"x" * 4096, 0o644, None)
        writers.finish()
    assert (tmp_path / "fits").stat().st_size == 4096


def test_without_fork_the_threads_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the platform has no ``fork`` (Windows), ``FileWriters``' threads."""
    monkeypatch.delattr(os, "fork")
    writers = open_writers()
    try:
        assert isinstance(writers, FileWriters)
    finally:
        writers.close()


def test_any_name_or_owner_an_archive_carries_is_the_systems_to_refuse(tmp_path: Path) -> None:
    """A name longer than the system takes fails as the system says (never a packing
    error); an owner beyond 2**31 is given to ``fchown`` as it is."""
    with WriterProcess() as writers:
        writers.write(tmp_path / ("n" * 70_000), b"x", 0o644, None)
        with pytest.raises(OSError) as refused:
            writers.finish()
    assert refused.value.errno == errno.ENAMETOOLONG
    if os.geteuid() == 0:
        with WriterProcess() as writers:
            writers.write(tmp_path / "owned", b"x", 0o644, (2**31 + 5, 2**31 + 6))
            writers.finish()
        owned = (tmp_path / "owned").stat()
        assert (owned.st_uid, owned.st_gid) == (2**31 + 5, 2**31 + 6)

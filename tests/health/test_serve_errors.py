"""`vigil-collector serve` mistakes: one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.processes import Collector
from tests.machine import lacking

BIN = Path(sys.executable).parent
AS_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-collector"), "serve", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.sqlite_only
def test_second_collector_on_the_same_data_is_refused(collector: Collector) -> None:
    """SQLite is one process: its data directory's lock refuses a second collector (on
    PostgreSQL several serve one database, tests/end_to_end/test_several_processes.py)."""
    out = _serve("--data", str(collector.data_dir), "--listen", "127.0.0.1:0")
    assert out.returncode == 2
    assert f"another collector (pid {collector.proc.pid}) is serving" in out.stderr
    assert "Traceback" not in out.stderr
    assert collector.proc.poll() is None


def test_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _serve("--data", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}")
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: the address is already in use" in out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    """``kind = "postgresql"`` used to be accepted, then ``serve`` died with a traceback."""
    config = tmp_path / "collector.toml"
    nowhere = tmp_path / "no-server-here"
    config.write_text(
        f'[storage]\nkind = "postgresql"\ndsn = "postgresql://vigil@/vigil?host={nowhere}"\n'
    )
    out = _serve(
        "--config", str(config), "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0"
    )
    assert out.returncode == 2
    assert "cannot open the PostgreSQL database" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.sqlite_only
def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    """SQLite is the one-process embedded database: ``--workers 2`` on it stops at start
    with one line saying why and what to do, before anything listens."""
    out = _serve("--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0", "--workers", "2")
    assert out.returncode == 2
    assert "--workers needs PostgreSQL storage" in out.stderr
    assert "migrate-storage" in out.stderr
    assert "Traceback" not in out.stderr
    out = _serve("--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0", "--workers", "0")
    assert out.returncode == 2 and "--workers must be at least 1" in out.stderr


@pytest.mark.sqlite_only
def test_a_data_directory_this_user_cannot_write_is_named(tmp_path: Path) -> None:
    """A first try as one's own user, the data directory root's: one line naming it and
    what to do (it was a PermissionError traceback)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        lacking("needs root and setpriv to run the collector as another user")
    shared = Path(tempfile.mkdtemp(prefix="vigil-perm-"))
    try:
        shared.chmod(0o755)
        (shared / "data").mkdir(mode=0o755)
        for data in (shared / "data", shared / "data" / "new"):
            out = subprocess.run(
                [*AS_NOBODY, str(BIN / "vigil-collector"), "serve", "--data", str(data)],
                capture_output=True,
                text=True,
                timeout=60,
                env={"PATH": os.environ["PATH"], "HOME": "/"},
            )
            assert out.returncode == 2, out.stderr
            assert "Traceback" not in out.stderr
            assert out.stderr.startswith(f"vigil-collector: permission denied: {data}")
            assert "--data DIR" in out.stderr
    finally:
        shutil.rmtree(shared)

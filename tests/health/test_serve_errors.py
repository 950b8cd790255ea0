"""`vigil-collector serve` mistakes: one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from harness.database import PrivatePostgres, private_postgres
from harness.processes import Collector

BIN = Path(sys.executable).parent


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-collector"), "serve", *args], capture_output=True, text=True, timeout=60
    )


def test_second_collector_on_the_same_data_is_refused(collector: Collector) -> None:
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


def test_second_collector_on_the_same_postgresql_is_refused(
    tmp_path: Path, postgres_server: PrivatePostgres | None
) -> None:
    """Two collectors on one PostgreSQL would both run the scheduled work: refused, naming
    the first one's pid, whatever their data directories."""
    with contextlib.ExitStack() as stack:
        server = postgres_server or stack.enter_context(private_postgres())
        url = server.new_database()
        first = Collector(tmp_path / "one", env={"VIGIL_STORAGE_URL": url}).start()
        stack.callback(first.kill, signal.SIGTERM)
        second = ["serve", "--data", str(tmp_path / "two"), "--listen", "127.0.0.1:0"]
        out = subprocess.run(
            [str(BIN / "vigil-collector"), *second],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "VIGIL_STORAGE_URL": url},
        )
        assert out.returncode == 2
        assert f"another collector (pid {first.proc.pid}) is serving" in out.stderr
        assert "Traceback" not in out.stderr
        assert first.proc.poll() is None

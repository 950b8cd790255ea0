"""``serve --workers N`` on PostgreSQL: the parent restarts a worker that dies and stops
them all on SIGTERM. Two processes of their own, one SIGKILLed mid-run and mid-upload:
``test_one_of_two_killed.py``.

``make test`` runs it on a private PostgreSQL of its own; under
``VIGIL_TEST_DB=postgresql`` (``make test-postgres``) it uses the session's server
(``conftest.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness.net import free_port, http, wait_until
from harness.processes import BIN


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def test_serve_workers_restarts_a_dead_worker_and_stops_them_all(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")
    parent = subprocess.Popen(
        [
            str(BIN / "vigil-collector"),
            "serve",
            "--workers",
            "2",
            "--data",
            str(tmp_path / "collector"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "VIGIL_STORAGE_URL": database_url},
    )
    try:
        wait_until(lambda: len(_children(parent.pid)) == 2, 30, what="two workers")
        workers = _children(parent.pid)

        def healthy() -> bool:
            try:
                return http("GET", url + "/healthz")[0] == 200
            except OSError:
                return False

        wait_until(healthy, 30, what="the workers answering")
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        wait_until(
            lambda: len(_children(parent.pid)) == 2 and killed not in _children(parent.pid),
            30,
            what="the dead worker started again",
        )
        for _ in range(10):  # connections land on either worker: all are answered
            wait_until(healthy, 30, what="every answer")
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers - {killed})
        text = (tmp_path / "serve.log").read_text(errors="replace")
        assert f"(pid {killed}) ended with status -9" in text, text
        assert "Traceback" not in text, text
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(30)
        log.close()

"""Several collector processes on one PostgreSQL: agents spread over two processes, one
SIGKILLed mid-run, and still every report stored once, sessions and replay protection
shared, each scheduled round run by one process, no notification sent twice; and
``serve --workers N``, which restarts a worker that dies and stops them all on SIGTERM.

Both passes run it: under ``VIGIL_TEST_DB=postgresql`` on the session's server, else on
a private PostgreSQL of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.database import PrivatePostgres, collector_sql, private_postgres
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.net import free_port, http, wait_until
from harness.processes import BIN, Collector
from harness.signed import batch, report, signed_headers
from tests.notify.receivers import WebhookReceiver
from tests.notify.test_webhook_delivery import cams

REPORTS = "/api/v1/agent/reports"
CHECK_INTERVAL_S = 2
CONFIG = f"""
[collector]
task_lease_s = 3
[contracts]
check_interval_s = {CHECK_INTERVAL_S}
[notify]
interval_s = 0.2
retry_base_s = 0.2
retry_max_s = 0.5
allow_private_targets = true
"""
AGENTS = 4
REPORTS_EACH = 12


@pytest.fixture
def database_url(postgres_server: PrivatePostgres | None) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        server = postgres_server or stack.enter_context(private_postgres())
        yield server.new_database()


def _post(c: Collector, session: tuple[str, bytes], body: bytes) -> tuple[int, bytes]:
    """Status and body; status 0 when the process is not there (killed)."""
    try:
        status, _, out = http(
            "POST", c.url + REPORTS, body, signed_headers(session, "POST", REPORTS, body)
        )
    except OSError:
        return 0, b""
    return status, out


def _tasks(c: Collector) -> dict[str, Any]:
    status, _, body = http("GET", c.url + "/healthz")
    assert status == 200, body
    return json.loads(body)["tasks"]


def _rounds(data_dir: Path, env: dict[str, str], task: str) -> int:
    with collector_sql(data_dir, env) as conn:
        row = conn.execute("SELECT rounds FROM task_leases WHERE name = ?", (task,)).fetchone()
    return 0 if row is None else int(row[0])


def _cameras(seq: int) -> list[dict[str, object]]:
    """cam-00 goes down at the third report and comes back at the sixth."""
    if 3 <= seq <= 5:
        return cams(1, "unreachable") + cams(2, "ok")[1:]
    return cams(2, "ok")


def _send_all(
    i: int, agent: EnrolledAgent, session: tuple[str, bytes], pair: list[Collector], sent: list[int]
) -> None:
    """An agent's reports, each to one process in turn; one that gets no answer is sent
    again (same report, signed anew) to the other, as an agent behind a load balancer."""
    for seq in range(1, REPORTS_EACH + 1):
        body = batch(report(seq, f"{agent.server_id}-{seq}", cameras=_cameras(seq)))
        for attempt in range(6):
            status, out = _post(pair[(i + seq + attempt) % 2], session, body)
            if status == 200:
                break
            assert status == 0, (status, out)
        else:
            raise AssertionError(f"report {seq} of agent {i} was never accepted")
        sent.append(seq)


def test_two_processes_one_killed(tmp_path: Path, database_url: str, make_agent) -> None:
    env = {"VIGIL_STORAGE_URL": database_url}
    config = tmp_path / "collector.toml"
    config.write_text(CONFIG)
    data = tmp_path / "collector"  # one machine: one data directory, one session key
    a = Collector(data, config=config, env=env).start()
    b = Collector(data, config=config, env=env)
    rx = WebhookReceiver()
    try:
        b.start()
        _, token = a.partner("acme")
        channel = a.last_line(
            "channel", "add", "--partner", "acme", "--type", "webhook", "--url", rx.url
        )
        a.cli("route", "add", "--partner", "acme", "--channel", channel, "--group-wait", "1s")
        agents = [enroll_agent((a, b)[i % 2].url, token, f"rec-{i}") for i in range(AGENTS)]
        for agent in agents:
            agent.url = a.url
        sessions = [agent.open_session() for agent in agents]  # all opened on a, used on both

        # A request accepted by a is a replay for b.
        body = batch(report(0, "replay-probe"))
        headers = signed_headers(sessions[0], "POST", REPORTS, body)
        assert http("POST", a.url + REPORTS, body, headers)[0] == 200
        status, _, out = http("POST", b.url + REPORTS, body, headers)
        assert status == 401 and json.loads(out)["error"] == "replay", out

        holders = [name for name, t in _tasks(a).items() if t["holds"]]
        on_b = [name for name, t in _tasks(b).items() if t["holds"]]
        assert "storage-checks" in holders and "storage-checks" in on_b, "everywhere"
        assert "notify" in holders and "notify" in on_b, "every process sends"
        wait_until(
            lambda: _tasks(a)["contract-checks"]["holds"] != _tasks(b)["contract-checks"]["holds"],
            30,
            what="one process holding the contract checks",
        )
        rounds_before, since = _rounds(data, env, "contract-checks"), time.monotonic()

        sent: list[int] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_catching(errors, _send_all), args=(i, agents[i], sessions[i], [a, b], sent)
            )
            for i in range(AGENTS)
        ]
        for t in threads:
            t.start()
        wait_until(lambda: len(sent) >= AGENTS * REPORTS_EACH // 3, 60, what="a third sent")
        a.kill()  # SIGKILL, with reports in flight
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert len(sent) == AGENTS * REPORTS_EACH

        with collector_sql(data, env) as conn:
            rows = conn.execute("SELECT server_id, seq FROM reports ORDER BY server_id, seq")
            stored = [tuple(r) for r in rows.fetchall()]
        for agent in agents:
            seqs = [seq for sid, seq in stored if sid == agent.server_id and seq > 0]
            assert seqs == list(range(1, REPORTS_EACH + 1)), (agent.server_id, seqs)

        # b took the scheduled work over once a's leases expired, and ran it once a period.
        wait_until(
            lambda: all(t["holds"] for t in _tasks(b).values()), 30, what="b holding every task"
        )
        taken_over = _rounds(data, env, "contract-checks")
        wait_until(
            lambda: _rounds(data, env, "contract-checks") > taken_over, 30, what="a round on b"
        )
        rounds = _rounds(data, env, "contract-checks") - rounds_before
        periods = (time.monotonic() - since) / CHECK_INTERVAL_S
        assert 1 <= rounds <= periods + 2, (rounds, periods)

        # Every notification went out once, whichever process sent it.
        def settled() -> bool:
            with collector_sql(data, env) as conn:
                pending = conn.execute(
                    "SELECT COUNT(*) FROM notify_messages WHERE state = 'pending'"
                ).fetchone()[0]
                unrouted = conn.execute(
                    "SELECT COUNT(*) FROM notify_events WHERE routed_at IS NULL"
                ).fetchone()[0]
            return pending == 0 and unrouted == 0 and bool(rx.delivered())

        wait_until(settled, 60, what="every notification delivered")
        with collector_sql(data, env) as conn:
            delivered = conn.execute(
                "SELECT COUNT(*) FROM notify_messages WHERE state = 'delivered'"
            ).fetchone()[0]
        ids = [hit.headers["webhook-id"] for hit in rx.delivered()]
        assert len(ids) == len(set(ids)) == delivered >= 1, (ids, delivered)
        assert len(rx.hits) == len(ids), "no attempt failed, none was repeated"
    finally:
        rx.close()
        a.kill()
        b.stop()


def _catching(errors: list[BaseException], run: Any) -> Any:
    """``run`` for a thread: what it raises is kept for the test to report."""

    def wrapped(*args: Any) -> None:
        try:
            run(*args)
        except BaseException as exc:
            errors.append(exc)

    return wrapped


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

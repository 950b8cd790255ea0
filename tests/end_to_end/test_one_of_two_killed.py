"""Two collector processes on one PostgreSQL and one S3 bucket (moto's server on
127.0.0.1), each with a data directory of its own as on two machines (the session key
file and ``notify.key`` shared as ``docs/deploy.md`` says). Agents report through both; a
backup upload goes through A; A is SIGKILLed once the upload's second chunk is
acknowledged and a third of the reports are stored, with reports still being sent. Then:

- every report is stored exactly once, sessions and replay protection are shared;
- the upload resumes where A acknowledged it and completes through B: catalogued
  verified, its object in the bucket, no staged chunk left, ``vigil-backup`` verifies it
  and restores the very bytes the agent had;
- each scheduled round ran once a period across both processes (the lease's record);
- no notification went out twice (the webhook receiver's log; delivery is at least
  once, so only a message A was sending as it died may arrive again, same webhook-id);
- A started again rejoins: it answers agents, sweeps its own disk, stands by for the
  leased tasks and takes them over when B stops.

``make test`` runs it on a private PostgreSQL of its own; under
``VIGIL_TEST_DB=postgresql`` (``make test-postgres``) it uses the session's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backup_runs import run_backups
from harness.database import collector_sql
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.net import http, wait_until
from harness.processes import BIN, Collector
from harness.s3 import new_bucket, s3_client, s3_config, storage_toml
from harness.signed import batch, report, signed_headers
from tests.backups.archive_helpers import snapshot
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
lease_s = 3
"""
AGENTS = 4
REPORTS_EACH = 12
KILL_AFTER = AGENTS * REPORTS_EACH // 3
"""A is killed once this many reports are stored (and the upload's second chunk is)."""
GATE = REPORTS_EACH * 2 // 3
"""Each agent sends this many reports, then waits for the kill: reports go on after it."""
MIB = 1 << 20
CHUNK = 8 * MIB
EVERYWHERE = ("storage-checks", "notify", "upload-files", "report-cache")
"""Tasks every process runs; the others run in the process holding their lease."""


@dataclass
class Site:
    """The two processes, what they share, and what the test saw happen."""

    a: Collector
    b: Collector
    env: dict[str, str]
    rx: WebhookReceiver
    endpoint: str
    bucket: str
    api_key: str = ""
    token: str = ""
    killed: threading.Event = field(default_factory=threading.Event)
    sent: list[int] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _site(tmp_path: Path, database_url: str, endpoint: str) -> Iterator[Site]:
    """A and B on two data directories, started; stopped (or killed) at the end."""
    bucket = new_bucket(endpoint)
    session_key = tmp_path / "session.key"
    session_key.write_bytes(os.urandom(32))
    session_key.chmod(0o600)
    config = tmp_path / "collector.toml"
    config.write_text(
        f'[http]\nsession_key_file = "{session_key}"\n'
        + CONFIG
        + storage_toml(s3_config(endpoint, bucket))
    )
    env = {"VIGIL_STORAGE_URL": database_url}
    a = Collector(tmp_path / "a", config=config, env=env)
    b = Collector(tmp_path / "b", config=config, env=env)
    site = Site(a, b, env, WebhookReceiver(), endpoint, bucket)
    try:
        a.start()
        site.api_key, site.token = a.partner("acme")
        channel = a.last_line(
            "channel", "add", "--partner", "acme", "--type", "webhook", "--url", site.rx.url
        )
        a.cli("route", "add", "--partner", "acme", "--channel", channel, "--group-wait", "1s")
        # The second machine gets the first one's notify.key before it starts.
        b.data_dir.mkdir(mode=0o700)
        shutil.copy2(a.data_dir / "notify.key", b.data_dir / "notify.key")
        b.start()
        yield site
    finally:
        site.rx.close()
        a.kill()
        b.stop()


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


def _lease(site: Site, task: str) -> tuple[int, float]:
    """(rounds run, start of the last one) of ``task``, whichever process ran them."""
    with collector_sql(site.a.data_dir, site.env) as conn:
        row = conn.execute(
            "SELECT rounds, last_round_at FROM task_leases WHERE name = ?", (task,)
        ).fetchone()
    return (0, 0.0) if row is None or row[1] is None else (int(row[0]), float(row[1]))


def _cameras(seq: int) -> list[dict[str, object]]:
    """cam-00 goes down at the third report and comes back at the eleventh, after A's
    kill (which waits for the "down" messages): both are sent, one before it, one after."""
    if 3 <= seq <= 10:
        return cams(1, "unreachable") + cams(2, "ok")[1:]
    return cams(2, "ok")


def _send_all(site: Site, i: int, agent: EnrolledAgent, session: tuple[str, bytes]) -> None:
    """An agent's reports, each to one process in turn; one that gets no answer is sent
    again (same report, signed anew) to the other, as an agent behind a load balancer.
    After ``GATE`` reports it waits for A's kill, so that reports go on after it."""
    pair = [site.a, site.b]
    for seq in range(1, REPORTS_EACH + 1):
        if seq == GATE + 1:
            assert site.killed.wait(120), "A was never killed"
        body = batch(report(seq, f"{agent.server_id}-{seq}", cameras=_cameras(seq)))
        for attempt in range(6):
            status, out = _post(pair[(i + seq + attempt) % 2], session, body)
            if status == 200:
                break
            assert status == 0, (status, out)
        else:
            raise AssertionError(f"report {seq} of agent {i} was never accepted")
        site.sent.append(seq)


def _staged(site: Site) -> list[str]:
    client = s3_client(site.endpoint)
    try:
        listed = client.list_objects_v2(Bucket=site.bucket, Prefix="vigil/test/_staging/")
        return [o["Key"] for o in listed.get("Contents", [])]
    finally:
        client.close()


def _cameras_notified(site: Site, status: str) -> set[str]:
    """The cameras whose ``camera.down`` message with ``status`` reached the receiver."""
    with site.rx.lock:
        docs = [hit.json for hit in site.rx.hits if hit.status == 200]
    return {
        event["key"]
        for doc in docs
        if doc["type"] == "camera.down" and doc["data"]["status"] == status
        for event in doc["data"]["events"]
    }


def _kill_a_mid_upload(site: Site, server_id: str) -> None:
    """Once a third of the reports are stored and every agent's camera-down message
    has gone out, note what is staged and SIGKILL A."""
    wait_until(
        lambda: len(site.sent) >= KILL_AFTER and len(_cameras_notified(site, "firing")) == AGENTS,
        120,
        what="a third of the reports, and every camera down notified",
    )
    site.seen["staged_at_kill"] = _staged(site)
    with collector_sql(site.a.data_dir, site.env) as conn:
        site.seen["chunk_rows_at_kill"] = conn.execute(
            "SELECT chunk_offset FROM backup_upload_chunks ORDER BY chunk_offset"
        ).fetchall()
    site.a.kill()  # SIGKILL
    site.seen["sent_at_kill"] = len(site.sent)
    site.killed.set()
    status, listed = site.b.api(site.api_key, f"/api/v1/servers/{server_id}/backups")
    site.seen["listed_on_b"] = listed["backups"] if status == 200 else (status, listed)


def _backup_through_a(site: Site, agent_config: Path, server_id: str) -> str:
    """The agent's backup run, its client behind a load balancer: to A until A is gone,
    then (from the request that found A gone) to B. A is killed right after the second
    chunk is acknowledged."""
    from agent.client import CollectorClient, CollectorUnavailable

    puts: list[int] = site.seen.setdefault("puts", [])

    class FailOver(CollectorClient):
        async def request(
            self, method, path, body=b"", content_type="application/json", params=None, **kw
        ):
            if method == "PUT":
                puts.append(int(params["offset"]))
            try:
                resp = await super().request(method, path, body, content_type, params, **kw)
            except CollectorUnavailable:
                if site.killed.is_set() and self.base_url == site.a.url:
                    site.seen["failed_over"] = True
                    self.base_url = site.b.url
                raise
            if method == "PUT" and len(puts) == 2 and not site.killed.is_set():
                site.seen["acknowledged_at_kill"] = resp.status
                await asyncio.to_thread(_kill_a_mid_upload, site, server_id)
            return resp

    async def backup() -> str:
        (out,) = await run_backups(agent_config, FailOver, retry_delays=(0.1, 0.1, 0.5, 1, 2))
        return out.outcome + " " + out.reason

    return asyncio.run(backup())


def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _backup_agent(site: Site, tree: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    """A recording server enrolled with ``vigil-agent enroll`` through A, backing up
    ``tree`` (with a 24 MiB file: over three chunks); (its config, its id, the partner's
    key)."""
    key_file = tmp_path / "recovery.key"
    recipient = _cli(str(BIN / "vigil-backup"), "keygen", "--out", str(key_file))
    site.a.cli("recovery-key", "add", "--partner", "acme", recipient)
    site.a.cli("backup", "policy", "set", "--partner", "acme", "--interval", "24h")
    (tree / "blob.bin").write_bytes(os.urandom(3 * CHUNK))
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "agent"}"\n[backup]\npaths = ["{tree}"]\n'
    )
    vigil_agent = str(BIN / "vigil-agent")
    _cli(
        vigil_agent,
        "enroll",
        "--collector",
        site.a.url,
        "--token",
        site.token,
        "--config",
        str(config),
    )
    identity = json.loads((tmp_path / "agent" / "identity.json").read_text())
    return config, identity["server_id"], key_file


def _reporters(site: Site) -> tuple[list[EnrolledAgent], list[tuple[str, bytes]]]:
    """Agents enrolled through either process, their sessions all opened on A; a request
    A accepted is a replay for B."""
    agents = [
        enroll_agent((site.a, site.b)[i % 2].url, site.token, f"rec-{i}") for i in range(AGENTS)
    ]
    for agent in agents:
        agent.url = site.a.url
    sessions = [agent.open_session() for agent in agents]
    body = batch(report(0, "replay-probe"))
    headers = signed_headers(sessions[0], "POST", REPORTS, body)
    assert http("POST", site.a.url + REPORTS, body, headers)[0] == 200
    status, _, out = http("POST", site.b.url + REPORTS, body, headers)
    assert status == 401 and json.loads(out)["error"] == "replay", out
    return agents, sessions


def _catching(errors: list[BaseException], run: Any) -> Any:
    """``run`` for a thread: what it raises is kept for the test to report."""

    def wrapped(*args: Any) -> None:
        try:
            run(*args)
        except BaseException as exc:
            errors.append(exc)

    return wrapped


def test_one_of_two_processes_killed_mid_run_and_mid_upload(
    tmp_path: Path, database_url: str, moto_endpoint: str, tree: Path
) -> None:
    with _site(tmp_path, database_url, moto_endpoint) as site:
        agents, sessions = _reporters(site)
        agent_config, server_id, key_file = _backup_agent(site, tree, tmp_path)
        a, b = site.a, site.b

        holders = [name for name, t in _tasks(a).items() if t["holds"]]
        on_b = [name for name, t in _tasks(b).items() if t["holds"]]
        assert "storage-checks" in holders and "storage-checks" in on_b, "everywhere"
        assert "notify" in holders and "notify" in on_b, "every process sends"
        wait_until(
            lambda: _tasks(a)["contract-checks"]["holds"] != _tasks(b)["contract-checks"]["holds"],
            30,
            what="one process holding the contract checks",
        )
        wait_until(lambda: _lease(site, "contract-checks")[0] >= 1, 30, what="a first round")
        rounds_before, last_before = _lease(site, "contract-checks")
        since = time.monotonic()

        errors: list[BaseException] = []
        outcome: list[str] = []
        threads = [
            threading.Thread(
                target=_catching(errors, _send_all), args=(site, i, agents[i], sessions[i])
            )
            for i in range(AGENTS)
        ]
        threads.append(
            threading.Thread(
                target=_catching(
                    errors,
                    lambda: outcome.append(_backup_through_a(site, agent_config, server_id)),
                )
            )
        )
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        assert site.killed.is_set()

        _every_report_once(site, agents)
        _upload_resumed_on_b(site, outcome, server_id, tmp_path)
        _rounds_once_a_period(site, rounds_before, last_before, since)
        _notified_once(site, agents)
        _restore_through(b, site, server_id, key_file, tree, tmp_path)
        _a_rejoins(site, agents[0])


def _every_report_once(site: Site, agents: list[EnrolledAgent]) -> None:
    assert len(site.sent) == AGENTS * REPORTS_EACH
    assert KILL_AFTER <= site.seen["sent_at_kill"] < AGENTS * REPORTS_EACH, "killed mid-run"
    with collector_sql(site.a.data_dir, site.env) as conn:
        rows = conn.execute(
            "SELECT server_id, report_id, seq, COUNT(*) FROM reports "
            "GROUP BY server_id, report_id, seq ORDER BY server_id, seq"
        )
        stored = [tuple(r) for r in rows.fetchall()]
    assert all(n == 1 for *_, n in stored), stored
    for agent in agents:
        mine = [(rid, seq) for sid, rid, seq, _ in stored if sid == agent.server_id and seq > 0]
        expected = [(f"{agent.server_id}-{s}", s) for s in range(1, REPORTS_EACH + 1)]
        assert mine == expected, (agent.server_id, mine)


def _upload_resumed_on_b(site: Site, outcome: list[str], server_id: str, tmp_path: Path) -> None:
    seen = site.seen
    assert outcome and outcome[0].startswith("ok"), outcome
    assert seen["acknowledged_at_kill"] == 200 and seen.get("failed_over")
    assert len(seen["staged_at_kill"]) == 2, seen["staged_at_kill"]  # two chunks in S3
    assert [tuple(r) for r in seen["chunk_rows_at_kill"]] == [(0,), (CHUNK,)]
    assert not list((site.a.data_dir / "uploads").glob("*"))  # nothing staged on A's disk
    assert seen["listed_on_b"] == []  # the partial upload is never listed
    puts = seen["puts"]
    assert puts[:2] == [0, CHUNK]
    assert puts[2] == 2 * CHUNK, puts  # resumed where A acknowledged
    status, listed = site.b.api(site.api_key, f"/api/v1/servers/{server_id}/backups")
    assert status == 200
    assert [(x["kind"], x["status"]) for x in listed["backups"]] == [("full", "verified")]
    assert _staged(site) == []  # staged chunks removed once stored
    with collector_sql(site.a.data_dir, site.env) as conn:
        key, size = conn.execute(
            "SELECT object_key, size FROM backups WHERE server_id = ?", (server_id,)
        ).fetchone()
        assert conn.execute("SELECT COUNT(*) FROM backup_upload_chunks").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM backup_uploads").fetchone()[0] == 0
    client = s3_client(site.endpoint)
    try:
        head = client.head_object(Bucket=site.bucket, Key=f"vigil/test/{key}")
    finally:
        client.close()
    assert head["ContentLength"] == size > 3 * CHUNK


def _rounds_once_a_period(site: Site, rounds_before: int, last_before: float, since: float) -> None:
    """B took the scheduled work over once A's leases expired, and ran it once a period:
    a round starts a period after the last one's start at the earliest, wherever that
    ran, so n rounds span at least n periods of the lease's record."""
    b = site.b
    wait_until(lambda: all(t["holds"] for t in _tasks(b).values()), 30, what="B holding every task")
    taken_over, _ = _lease(site, "contract-checks")
    wait_until(lambda: _lease(site, "contract-checks")[0] > taken_over, 30, what="a round on B")
    rounds_after, last_after = _lease(site, "contract-checks")
    rounds = rounds_after - rounds_before
    periods = (time.monotonic() - since) / CHECK_INTERVAL_S
    assert 1 <= rounds <= periods + 2, (rounds, periods)
    assert rounds * CHECK_INTERVAL_S <= last_after - last_before + 1e-3, (
        rounds,
        last_after - last_before,
    )


def _notified_once(site: Site, agents: list[EnrolledAgent]) -> None:
    """Every notification went out once, whichever process sent it."""

    def settled() -> bool:
        with collector_sql(site.a.data_dir, site.env) as conn:
            pending = conn.execute(
                "SELECT COUNT(*) FROM notify_messages WHERE state = 'pending'"
            ).fetchone()[0]
            unrouted = conn.execute(
                "SELECT COUNT(*) FROM notify_events WHERE routed_at IS NULL"
            ).fetchone()[0]
            grouping = conn.execute(
                "SELECT COUNT(*) FROM notify_alerts WHERE pending_since IS NOT NULL"
            ).fetchone()[0]
        return pending == unrouted == grouping == 0 and bool(site.rx.delivered())

    wait_until(settled, 60, what="every notification delivered")
    with collector_sql(site.a.data_dir, site.env) as conn:
        delivered = conn.execute(
            "SELECT COUNT(*) FROM notify_messages WHERE state = 'delivered'"
        ).fetchone()[0]
        attempts = dict(
            conn.execute(
                "SELECT message_id, COUNT(*) FROM notify_attempts GROUP BY message_id"
            ).fetchall()
        )
    assert all(hit.status == 200 for hit in site.rx.hits), "no attempt failed"
    ids = [hit.headers["webhook-id"] for hit in site.rx.hits]
    assert len(set(ids)) == delivered >= 1, (ids, delivered)
    cameras = {f"camera:{agent.server_id}:cam-00" for agent in agents}
    assert _cameras_notified(site, "firing") == _cameras_notified(site, "resolved") == cameras
    # Delivery is at least once: the message A was sending when it was killed (the
    # receiver answered, A never recorded it) goes again after its claim's lease, with
    # the same webhook-id and body, for the receiver to drop. Nothing else goes twice.
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert len(repeated) <= 1 and len(ids) == len(set(ids)) + len(repeated), ids
    for mid in repeated:
        assert len({h.body for h in site.rx.hits if h.headers["webhook-id"] == mid}) == 1
        assert attempts[int(mid.removeprefix("msg_"))] == 1, "A's attempt was never logged"


def _restore_through(
    c: Collector, site: Site, server_id: str, key_file: Path, tree: Path, tmp_path: Path
) -> None:
    """``vigil-backup`` verifies and restores the backup through ``c``: the agent's bytes."""
    env = dict(os.environ, VIGIL_COLLECTOR=c.url, VIGIL_API_KEY=site.api_key)
    vb = str(BIN / "vigil-backup")
    _cli(vb, "verify", "--server", server_id, "--identity", str(key_file), env=env)
    dest = tmp_path / "restored"
    args = ["--server", server_id, "--identity", str(key_file), "--to", str(dest)]
    _cli(vb, "restore", *args, env=env)
    back = dest / tree.relative_to("/")
    assert (back / "blob.bin").read_bytes() == (tree / "blob.bin").read_bytes()
    assert snapshot(back) == snapshot(tree)


def _a_rejoins(site: Site, agent: EnrolledAgent) -> None:
    """A started again on its data directory answers agents (a session opened through B
    works, a nonce B took is refused), clears what a ``complete`` killed on its disk
    left there although B holds the backup maintenance, stands by for the leased tasks
    while B holds them, and takes them over when B stops."""
    a, b = site.a, site.b
    left = a.data_dir / "uploads" / "0123456789abcdef01234567.part"
    left.parent.mkdir(exist_ok=True)
    left.write_bytes(os.urandom(4096))
    os.utime(left, (time.time() - 3600, time.time() - 3600))  # killed an hour ago
    a.start()
    wait_until(lambda: not left.exists(), 30, what="A's leftover staged file removed")
    tasks = _tasks(a)
    assert all(tasks[name]["holds"] for name in EVERYWHERE), tasks
    leased = [name for name in tasks if name not in EVERYWHERE]
    assert "contract-checks" in leased and not any(tasks[n]["holds"] for n in leased), tasks
    agent.url = b.url
    session = agent.open_session()
    body = batch(report(REPORTS_EACH + 1, f"{agent.server_id}-rejoined"))
    headers = signed_headers(session, "POST", REPORTS, body)
    assert http("POST", a.url + REPORTS, body, headers)[0] == 200
    status, _, out = http("POST", b.url + REPORTS, body, headers)
    assert status == 401 and json.loads(out)["error"] == "replay", out
    with collector_sql(a.data_dir, site.env) as conn:
        n = conn.execute(
            "SELECT COUNT(*) FROM reports WHERE server_id = ? AND report_id = ?",
            (agent.server_id, f"{agent.server_id}-rejoined"),
        ).fetchone()[0]
    assert n == 1
    b.stop()  # a clean stop gives the leases up at once
    wait_until(lambda: all(t["holds"] for t in _tasks(a).values()), 30, what="A holding every task")

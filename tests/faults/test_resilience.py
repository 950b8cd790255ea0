"""Nothing lost, nothing doubled: kill -9 of the collector or the agent while it reports."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from harness.database import collector_sql
from harness.net import wait_until
from harness.processes import Agent, Collector
from tests.faults.disk_full import fill_disk


def stored_reports(collector: Collector, server_id: str) -> list[tuple[int, str]]:
    with collector_sql(collector.data_dir, collector.env) as db:
        rows = db.execute(
            "SELECT seq, report_id FROM reports WHERE server_id = ? ORDER BY seq", (server_id,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def drained(agent: Agent) -> bool:
    st = agent.status()
    return st["spool"]["reports"] == 0 and st["last_report_seq"] is not None


def assert_exactly_once(collector: Collector, agent: Agent, server_id: str) -> int:
    """Every report the agent produced (1..its last sequence number) is stored once."""
    agent.kill(signal.SIGTERM)  # orderly stop: flushes, then the figures are final
    final = agent.status()
    assert final["spool"]["reports"] == 0, final
    assert final["spool"]["dropped_total"] == 0
    produced = final["last_report_seq"]
    rows = stored_reports(collector, server_id)
    seqs = [seq for seq, _ in rows]
    ids = [rid for _, rid in rows]
    assert seqs == list(range(1, produced + 1)), f"missing or doubled: {seqs}"
    assert len(set(ids)) == len(ids) == produced
    return produced


def setup(collector: Collector, make_agent) -> tuple[Agent, str]:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent()
    server_id = agent.enroll(collector.url, token)
    agent.start()
    return agent, server_id


def test_collector_killed_repeatedly_loses_and_doubles_nothing(tmp_path: Path, make_agent) -> None:
    collector = Collector(tmp_path / "collector").start()
    try:
        agent, server_id = setup(collector, make_agent)
        wait_until(lambda: len(stored_reports(collector, server_id)) >= 2, 30, what="first reports")
        for _ in range(4):
            time.sleep(1.3)
            collector.kill(signal.SIGKILL)
            wait_until(
                lambda: agent.polled_status()["spool"]["reports"] >= 2, 30, what="reports to spool"
            )
            collector.start()
        wait_until(lambda: drained(agent), 60, what="the spool to drain")
        produced = assert_exactly_once(collector, agent, server_id)
        assert produced >= 10
    finally:
        collector.kill(signal.SIGTERM)


def test_agent_killed_repeatedly_loses_and_doubles_nothing(
    collector: Collector, make_agent
) -> None:
    agent, server_id = setup(collector, make_agent)
    wait_until(lambda: len(stored_reports(collector, server_id)) >= 2, 30, what="first reports")
    for _ in range(4):
        time.sleep(1.1)
        agent.kill(signal.SIGKILL)
        agent.start()
    wait_until(lambda: len(stored_reports(collector, server_id)) >= 8, 30, what="more reports")
    wait_until(lambda: drained(agent), 60, what="the spool to drain")
    assert assert_exactly_once(collector, agent, server_id) >= 8


def test_reports_wait_in_the_spool_and_count_as_sent_later(tmp_path: Path, make_agent) -> None:
    collector = Collector(tmp_path / "collector").start()
    try:
        agent, server_id = setup(collector, make_agent)
        wait_until(lambda: stored_reports(collector, server_id), 30, what="a first report")
        collector.kill(signal.SIGKILL)
        wait_until(
            lambda: agent.polled_status()["spool"]["reports"] >= 3, 30, what="reports to spool"
        )
        st = agent.status()
        assert st["last_error"] and "cannot reach" in st["last_error"]
        assert st["spool"]["oldest_at"] is not None
        collector.start()
        wait_until(lambda: drained(agent), 60, what="the spool to drain")
        assert_exactly_once(collector, agent, server_id)
    finally:
        collector.kill(signal.SIGTERM)


def test_silent_server_shows_offline_after_three_intervals(
    collector: Collector, make_agent
) -> None:
    key, _ = collector.partner("watch")
    collector.cli("server", "interval", "--partner", "watch", "1s")
    token = collector.last_line("token", "create", "--partner", "watch")
    agent = make_agent()
    server_id = agent.enroll(collector.url, token)
    agent.start()
    wait_until(lambda: collector.api(key, f"/api/v1/servers/{server_id}")[1]["last_seen"], 30)
    assert collector.api(key, f"/api/v1/servers/{server_id}")[1]["status"] != "offline"
    agent.kill(signal.SIGKILL)
    wait_until(
        lambda: collector.api(key, f"/api/v1/servers/{server_id}")[1]["status"] == "offline",
        30,
        what="offline status",
    )
    body = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    assert "no report for" in body["status_reasons"][0]


def test_disk_full_while_acknowledging_loses_and_doubles_nothing(
    tmp_path: Path, make_agent, tmpfs
) -> None:
    """The marks cannot be written when the collector acknowledges: sending goes on (no
    restart), the reports collected meanwhile wait in memory and follow once there is room."""
    collector = Collector(tmp_path / "collector").start()
    try:
        collector.cli("partner", "add", "acme")
        collector.cli("server", "interval", "--partner", "acme", "1s")
        token = collector.last_line("token", "create", "--partner", "acme")
        agent = make_agent()
        tmpfs(agent.state_dir, "512k")
        server_id = agent.enroll(collector.url, token)
        agent.start()
        wait_until(lambda: len(stored_reports(collector, server_id)) >= 2, 30, what="reports")
        collector.kill(signal.SIGKILL)
        wait_until(
            lambda: agent.polled_status()["spool"]["reports"] >= 3, 30, what="reports to spool"
        )
        filler = fill_disk(agent.state_dir)
        spooled = agent.status()["spool"]["oldest_seq"] + agent.status()["spool"]["reports"] - 1
        collector.start()  # the spooled reports go out; acknowledging them hits the full disk
        wait_until(
            lambda: max((s for s, _ in stored_reports(collector, server_id)), default=0) >= spooled,
            30,
            what="the spooled reports sent",
        )
        time.sleep(2)  # reports collected now wait in memory
        filler.unlink()
        before = len(stored_reports(collector, server_id))
        wait_until(
            lambda: len(stored_reports(collector, server_id)) >= before + 3,
            30,
            what="sending again after the disk has room, without a restart",
        )
        wait_until(lambda: drained(agent), 60, what="the spool to drain")
        assert agent.proc is not None and agent.proc.poll() is None
        assert "Traceback" not in agent.log_path.read_text()
        assert "cannot write the spool" in agent.log_path.read_text()
        assert assert_exactly_once(collector, agent, server_id) >= spooled + 3
    finally:
        collector.kill(signal.SIGTERM)

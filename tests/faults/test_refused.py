"""An agent the collector no longer knows (its database recreated) or has revoked: the
right reason, logged once, shown by ``status`` and ``doctor``, and a slow check instead
of retries at full rate. A revoked agent collects nothing new until enrolled again."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from harness.database import PrivatePostgres, own_database_env
from harness.net import wait_until
from harness.processes import Agent, Collector
from tests.faults.test_resilience import stored_reports

SLOW = "refused_check_s = 3600\n"


def enrolled(collector: Collector, make_agent) -> tuple[Agent, str]:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent(extra_config=SLOW)
    server_id = agent.enroll(collector.url, token)
    agent.start()
    wait_until(lambda: len(stored_reports(collector, server_id)) >= 2, 30, what="reports")
    return agent, server_id


def refusal(agent: Agent) -> dict | None:
    return agent.status().get("refusal")


def test_unknown_server_is_said_once_and_checked_slowly(
    tmp_path: Path, make_agent, postgres_server: PrivatePostgres | None
) -> None:
    old = Collector(tmp_path / "collector").start()
    fresh = Collector(tmp_path / "recreated", port=old.port, env=own_database_env(postgres_server))
    try:
        agent, _ = enrolled(old, make_agent)
        old.kill(signal.SIGKILL)
        fresh.start()  # same address, a new database: this agent is unknown there
        wait_until(
            lambda: (refusal(agent) or {}).get("code") == "unknown_server",
            30,
            what="the refusal in the status",
        )
        time.sleep(5)  # at full rate (retry_max_s = 2) this would be several attempts
        st = agent.status()
        assert st["refusal"]["attempts"] == 1
        assert "the collector does not know this agent" in st["last_error"]
        log = agent.log_path.read_text()
        assert log.count("unknown_server") == 1, log
        assert "the collector does not know this agent (unknown_server" in log
        assert "checking again every 3600 s" in log
        text = agent.cmd("status").stdout
        assert "refused      unknown_server" in text
        doctor = agent.cmd("doctor", check=False)
        assert doctor.returncode == 1
        assert "does not know this agent (unknown_server" in doctor.stdout
        assert "the collector refuses this agent (unknown_server) since" in doctor.stdout
        assert agent.proc is not None and agent.proc.poll() is None
    finally:
        old.kill(signal.SIGKILL)
        fresh.kill(signal.SIGTERM)


def test_revoked_agent_stops_collecting_and_resumes_when_enrolled_again(
    collector: Collector, make_agent
) -> None:
    agent, server_id = enrolled(collector, make_agent)
    collector.cli("server", "revoke", server_id)
    wait_until(lambda: (refusal(agent) or {}).get("code") == "revoked", 30, what="the revocation")
    before = agent.status()
    time.sleep(3)  # three report intervals
    after = agent.status()
    assert after["last_report_seq"] == before["last_report_seq"]
    assert after["spool"]["reports"] == before["spool"]["reports"]
    assert after["refusal"]["attempts"] == 1
    assert after["revoked"] is True
    text = agent.cmd("status").stdout
    assert "REVOKED" in text
    assert "no new reports are collected" in text
    log = agent.log_path.read_text()
    assert log.count("the collector revoked this agent") == 1, log
    assert "Traceback" not in log
    stored = max(s for s, _ in stored_reports(collector, server_id))

    agent.kill(signal.SIGTERM)  # a restart (systemd's, or a reboot) changes nothing
    agent.start()
    wait_until(
        lambda: agent.polled_status()["running_pid"] == agent.proc.pid, 30, what="the restart"
    )
    time.sleep(3)
    st = agent.status()
    assert st["revoked"] is True and st["refusal"]["code"] == "revoked"
    assert st["last_report_seq"] == after["last_report_seq"]
    assert st["spool"]["reports"] == after["spool"]["reports"]
    assert "REVOKED" in agent.cmd("status").stdout

    token = collector.last_line(
        "token", "create", "--partner", "acme", "--allow-reenroll"
    )  # a revoked machine comes back only as a new server, with the operator's consent
    agent.cmd("enroll", "--force", "--collector", collector.url, "--token", token)
    assert agent.proc is not None
    assert agent.proc.wait(30) == 75  # restarts with the new identity (systemd starts it)
    assert "enrolled again as" in agent.log_path.read_text()
    # A revoked server stays revoked: the machine comes back as a new server.
    new_id = json.loads((agent.state_dir / "identity.json").read_text())["server_id"]
    assert new_id != server_id
    agent.start()
    wait_until(
        lambda: len(stored_reports(collector, new_id)) >= 2,
        30,
        what="reports after enrolling again",
    )
    assert max(s for s, _ in stored_reports(collector, server_id)) <= stored
    st = agent.status()
    assert st["refusal"] is None and st["revoked"] is False
    seqs = [s for s, _ in stored_reports(collector, server_id)]
    assert seqs == list(range(1, max(seqs) + 1))

"""No task of the agent daemon stops silently: a failure is logged with its traceback and
the task restarts; one that keeps failing stops the process non-zero (systemd restarts
it); ``status`` and ``doctor`` show a task that is not running; one daemon per state
directory."""

from __future__ import annotations

import signal

from harness.net import wait_until
from harness.processes import Agent, Collector
from tests.faults.injection import injected
from tests.faults.test_resilience import stored_reports


def enrolled(collector: Collector, make_agent, **faults: str) -> tuple[Agent, str]:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent()
    agent.env = injected(**faults)
    return agent, agent.enroll(collector.url, token)


def test_send_loop_failure_is_logged_once_and_sending_resumes(
    collector: Collector, make_agent
) -> None:
    agent, server_id = enrolled(collector, make_agent, send_raises="2")
    agent.start()
    wait_until(lambda: len(stored_reports(collector, server_id)) >= 2, 40, what="reports sent")
    assert agent.proc is not None and agent.proc.poll() is None
    log = agent.log_path.read_text()
    assert log.count("Traceback") == 1, log
    assert "RuntimeError: injected fault in the send loop" in log
    assert "task sender failed" in log
    assert agent.status()["tasks"]["sender"]["state"] == "running"


def test_send_loop_that_keeps_failing_is_shown_then_stops_the_process(
    collector: Collector, make_agent
) -> None:
    agent, _ = enrolled(collector, make_agent, send_raises="always")
    agent.start()
    wait_until(
        lambda: agent.polled_status()["tasks"].get("sender", {}).get("state") == "restarting",
        30,
        what="the sender shown restarting",
    )
    text = agent.cmd("status").stdout
    assert "TASK DOWN    sender: restarting" in text
    doctor = agent.cmd("doctor", check=False)
    assert doctor.returncode == 1
    assert "task sender is not running" in doctor.stdout
    assert agent.proc is not None
    code = agent.proc.wait(60)
    assert code != 0
    log = agent.log_path.read_text()
    assert log.count("Traceback") == 1, log
    assert "task sender failed 5 times" in log
    st = agent.status()
    assert st["tasks"]["sender"]["state"] == "failed"
    assert st["exit_reason"] == "task sender kept failing"
    doctor = agent.cmd("doctor", check=False)
    assert "it stopped because task sender kept failing" in doctor.stdout


def test_a_second_daemon_on_one_state_directory_is_refused(
    collector: Collector, make_agent
) -> None:
    agent, server_id = enrolled(collector, make_agent)
    agent.start()
    wait_until(lambda: stored_reports(collector, server_id), 30, what="a first report")
    first = agent.proc
    assert first is not None
    second = agent.cmd("run", check=False, timeout=30)
    assert second.returncode != 0
    assert f"another agent (pid {first.pid}) is already running" in second.stderr
    assert first.poll() is None
    agent.kill(signal.SIGTERM)
    seqs = [seq for seq, _ in stored_reports(collector, server_id)]
    assert len(seqs) == len(set(seqs))

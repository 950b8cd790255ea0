"""The agent's log at the default level has no per-interval scheduler chatter."""

from __future__ import annotations

from harness.net import wait_until
from harness.processes import Collector


def test_no_scheduler_lines_at_info(collector: Collector, make_agent) -> None:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent()
    agent.enroll(collector.url, token)
    agent.start(log_level="info")
    try:
        wait_until(
            lambda: (agent.polled_status().get("last_report_seq") or 0) >= 4, 30, what="reports"
        )
    finally:
        agent.kill()
    log = agent.log_path.read_text()
    assert "apscheduler" not in log
    assert "Running job" not in log and "executed successfully" not in log
    assert log.count("\n") < 20, log

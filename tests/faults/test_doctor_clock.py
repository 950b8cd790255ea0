"""``doctor`` measures the clock with the sign ``status`` uses and against the collector's
own limit (``max_clock_skew_s``, sent in the settings). The collector runs with its clock
shifted (an injected fault), so this server's clock is behind it."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from harness.net import wait_until
from harness.processes import Collector
from tests.faults.injection import injected
from tests.faults.test_resilience import stored_reports


def start_collector(tmp_path: Path, shift_s: int, limit_s: int) -> Collector:
    config = tmp_path / "collector.toml"
    config.write_text(f"[collector]\nmax_clock_skew_s = {limit_s}\n")
    c = Collector(tmp_path / "collector", config=config)
    c.env = injected(clock_shift_s=str(shift_s))
    return c.start()


def test_doctor_sign_and_limit_follow_the_collector(tmp_path: Path, make_agent) -> None:
    collector = start_collector(tmp_path, 200, 300)
    try:
        collector.cli("partner", "add", "acme")
        collector.cli("server", "interval", "--partner", "acme", "1s")
        token = collector.last_line("token", "create", "--partner", "acme")
        agent = make_agent()
        server_id = agent.enroll(collector.url, token)
        out = agent.cmd("doctor", check=False)
        line = next(x for x in out.stdout.splitlines() if " clock " in x)
        # The collector is 200 s ahead: this agent's clock is 200 s behind, within 300 s.
        assert line.startswith("[warn]"), out.stdout
        m = re.search(
            r"agent clock is (\d+\.\d) s behind the collector \(collector's limit 300 s\)", line
        )
        assert m and abs(float(m.group(1)) - 200) < 5, line
        assert out.returncode == 0, out.stdout

        agent.start()
        wait_until(lambda: stored_reports(collector, server_id), 30, what="a report")
        wait_until(
            lambda: agent.polled_status().get("clock_offset_s") is not None, 30, what="offset"
        )
        st = agent.status()
        assert abs(st["clock_offset_s"] + 200) < 5  # the same sign: negative = behind
        assert "agent clock is 2" in agent.cmd("status").stdout
        assert "s behind the collector" in agent.cmd("status").stdout
        agent.kill(signal.SIGTERM)
    finally:
        collector.kill(signal.SIGTERM)

    # The same collector, now with a limit of 100 s: it refuses the session, doctor fails.
    (tmp_path / "collector.toml").write_text("[collector]\nmax_clock_skew_s = 100\n")
    collector.start()
    try:
        out = agent.cmd("doctor", check=False)
        line = next(x for x in out.stdout.splitlines() if " clock " in x)
        assert line.startswith("[FAIL]"), out.stdout
        assert "behind the collector" in line
        assert out.returncode == 1
    finally:
        collector.kill(signal.SIGTERM)

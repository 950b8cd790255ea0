"""SIGHUP makes the running collector re-read its configuration file: open connections
stay open, an agent reporting through the reload loses nothing, what may change live
changes, what needs a restart is named; a file that does not load changes nothing."""

from __future__ import annotations

import http.client
import json
import signal
from pathlib import Path

from harness.net import wait_until
from harness.processes import Collector

OLD_TOKEN = "old-metrics-token-0123456789"
NEW_TOKEN = "new-metrics-token-0123456789"


def _config(path: Path, token: str, give_up_after: int = 10, extra: str = "") -> Path:
    path.write_text(
        f"[collector]\ntask_give_up_after = {give_up_after}\n"
        f'[metrics]\ntoken = "{token}"\n[log]\nformat = "logfmt"\n{extra}'
    )
    return path


def _metrics(conn: http.client.HTTPConnection, token: str) -> int:
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def test_sighup_reloads_without_dropping_connections_or_reports(tmp_path: Path, make_agent) -> None:
    config = _config(tmp_path / "collector.toml", OLD_TOKEN)
    collector = Collector(tmp_path / "collector", config=config).start()
    try:
        collector.cli("partner", "add", "acme")
        collector.cli("server", "interval", "--partner", "acme", "1s")
        token = collector.last_line("token", "create", "--partner", "acme")
        agent = make_agent()
        agent.enroll(collector.url, token)
        agent.start()
        wait_until(
            lambda: (agent.polled_status().get("last_report_seq") or 0) >= 2, 30, what="reports"
        )
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
        assert _metrics(conn, OLD_TOKEN) == 200
        _config(config, NEW_TOKEN, give_up_after=3)
        collector.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "event=reloaded" in collector.log(), 30, what="reload")
        assert collector.proc.poll() is None
        # The same keep-alive connection, now under the new token.
        assert _metrics(conn, NEW_TOKEN) == 200
        assert _metrics(conn, OLD_TOKEN) == 401
        conn.close()
        seq = agent.status()["last_report_seq"]
        wait_until(lambda: agent.polled_status()["last_report_seq"] >= seq + 2, 30, what="reports")
        wait_until(lambda: agent.polled_status()["spool"]["reports"] == 0, 30, what="spool drained")
        status = agent.status()
        assert status["spool"]["dropped_total"] == 0 and status["last_error"] is None
    finally:
        agent.kill(signal.SIGTERM)
        collector.stop()
    log = collector.log()
    assert "changed=metrics_token" in log
    restart = next(x for x in log.splitlines() if "reload_needs_restart" in x)
    assert "key=task_give_up_after" in restart and f"file={config}" in restart
    assert collector.proc.returncode == 0


def test_sighup_with_an_invalid_file_keeps_the_running_configuration(tmp_path: Path) -> None:
    config = _config(tmp_path / "collector.toml", OLD_TOKEN)
    collector = Collector(tmp_path / "collector", config=config).start()
    try:
        config.write_text(config.read_text().replace(OLD_TOKEN, "short"))
        collector.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload_refused" in collector.log(), 30, what="refusal")
        line = next(x for x in collector.log().splitlines() if "reload_refused" in x)
        assert f"file={config}" in line and "key=metrics.token" in line
        assert 'reason="expected at least 16 characters' in line
        config.write_text("[collector\n")
        collector.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: 'key="(syntax)"' in collector.log(), 30, what="refusal")
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
        assert _metrics(conn, OLD_TOKEN) == 200
        conn.request("GET", "/healthz")
        assert json.loads(conn.getresponse().read())["status"] == "ok"
        assert collector.proc.poll() is None
    finally:
        collector.stop()
    assert "event=reloaded" not in collector.log()

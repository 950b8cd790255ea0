"""SIGHUP makes the running agent re-read its configuration: reports waiting in the spool
are all delivered, a backup in progress finishes as it started, and a file that does not
load changes nothing (the log names the file, the key and the reason)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from harness.net import wait_until
from harness.processes import BIN, Agent, Collector


def _backup_tool(*args: str) -> str:
    out = subprocess.run(
        [str(BIN / "vigil-backup"), *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _backups_for(collector: Collector, tmp_path: Path) -> str:
    """A partner whose servers back up every minute to a signed recovery key; its token."""
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    key_file = tmp_path / "recovery.key"
    recipient = _backup_tool("keygen", "--out", str(key_file))
    signer = _backup_tool("signer", "--identity", str(key_file))
    signed = _backup_tool("sign-recipients", "--identity", str(key_file), recipient)
    collector.cli("recovery-key", "add", "--partner", "acme", signed)
    collector.cli("backup", "policy", "set", "--partner", "acme", "--interval", "1m")
    token = collector.last_line("token", "create", "--partner", "acme", "--uses", "5")
    return f"{token}#{signer}"


def _alive(agent: Agent) -> bool:
    return agent.proc is not None and agent.proc.poll() is None


def test_sighup_keeps_spool_and_running_backup(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    token = _backups_for(collector, tmp_path)
    src = tmp_path / "vms-config"
    src.mkdir()
    (src / "recorder.conf").write_text("retention_days = 30\n")
    started = tmp_path / "pre-command-started"
    release = tmp_path / "pre-command-release"
    # The pre-command holds the backup running until the test releases it, so the reload
    # meets a running backup however slowly the machine gets there.
    hold = f"touch {started}; while [ ! -e {release} ]; do sleep 0.1; done"
    backup = (
        f'\n[backup]\npaths = ["{src}"]\n'
        f'pre_command = ["sh", "-c", "{hold}"]\npre_command_timeout = 300\n'
    )
    agent = make_agent(extra_config=backup)
    agent.enroll(collector.url, token)
    agent.start()
    try:
        wait_until(started.exists, 60, what="the backup's pre-command to start")
        wait_until(lambda: agent.polled_status()["backup"]["running"], 10, what="backup running")
        # The collector goes away: reports pile up in the spool.
        collector.stop()
        wait_until(
            lambda: agent.polled_status()["spool"]["reports"] >= 2, 30, what="spooled reports"
        )
        spooled = agent.status()["spool"]["reports"]
        pid = agent.proc.pid
        agent.config.write_text(
            agent.config.read_text().replace("retry_max_s = 2", "retry_max_s = 1")
            + '\n[log]\nformat = "logfmt"\n'
        )
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: "event=reloaded" in agent.log_path.read_text(), 30, what="reload")
        assert _alive(agent) and agent.status()["running_pid"] == pid
        assert agent.status()["backup"]["running"] is True, "the backup was not interrupted"
        assert agent.status()["spool"]["reports"] >= spooled, "no spooled report was lost"
        collector.start()
        release.touch()
        wait_until(
            lambda: not agent.polled_status()["backup"]["running"],
            90,
            what="the backup to end",
        )
        assert agent.status()["backup"]["last_outcome"] == "ok", agent.status()["backup"]
        wait_until(lambda: agent.polled_status()["spool"]["reports"] == 0, 60, what="spool drained")
        assert agent.status()["spool"]["dropped_total"] == 0
    finally:
        release.touch()
        agent.kill(signal.SIGTERM)
    log = agent.log_path.read_text()
    assert "changed=log_format,retry_max_s" in log, log[-3000:]
    assert agent.proc.returncode == 0


def test_sighup_with_an_invalid_file_keeps_the_running_configuration(
    collector: Collector, make_agent
) -> None:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent(extra_config="\n[spool]\nmax_bytes = 1048576\n")
    agent.enroll(collector.url, token)
    agent.start()
    try:
        wait_until(
            lambda: (agent.polled_status().get("last_report_seq") or 0) >= 1, 30, what="report"
        )
        good = agent.config.read_text()
        agent.config.write_text(good.replace("max_bytes = 1048576", "max_bytes = -5"))
        os.kill(agent.proc.pid, signal.SIGHUP)
        wait_until(lambda: "reload_refused" in agent.log_path.read_text(), 30, what="refusal")
        line = next(x for x in agent.log_path.read_text().splitlines() if "reload_refused" in x)
        assert f"file={agent.config}" in line and "key=spool.max_bytes" in line
        assert "reason=" in line and "integer from" in line
        agent.config.write_text("[agent\n")  # not TOML at all
        os.kill(agent.proc.pid, signal.SIGHUP)
        wait_until(lambda: 'key="(syntax)"' in agent.log_path.read_text(), 30, what="refusal")

        # The daemon's own status file (the status command would read the broken file too).
        def daemon_status() -> dict:
            return json.loads((agent.state_dir / "status.json").read_text())

        seq = daemon_status()["last_report_seq"]
        wait_until(lambda: daemon_status()["last_report_seq"] > seq + 1, 30, what="reports")
        assert daemon_status()["spool"]["max_bytes"] == 1048576
        assert _alive(agent)
    finally:
        agent.kill(signal.SIGTERM)
    assert agent.proc.returncode == 0
    assert "configuration reloaded" not in agent.log_path.read_text()

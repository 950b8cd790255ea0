"""An agent between backups carries only what its features in use need: with backups
configured but not running, the archive, compression and encryption stack (``zstandard``,
``tarfile``, the age module, ``cryptography``) is not imported, and without ``[cameras]``
neither is the ONVIF stack (``zeep``, ``lxml``, the probe). Checked on a real
``vigil-agent run`` process through its ``sys.modules`` at exit."""

from __future__ import annotations

import signal
from pathlib import Path

from harness.net import wait_until
from harness.processes import Collector

PROBE = str(Path(__file__).parent / "modules_probe")
BACKUP_STACK = (
    "zstandard",
    "tarfile",
    "cryptography",
    "agent.backup.archive",
    "agent.backup.sources",
    "protocol.backup_archive",
)
CAMERA_STACK = ("zeep", "lxml", "agent.cameras.monitor", "agent.cameras.probe")


def _modules_of_idle_agent(collector: Collector, make_agent, tmp_path: Path, extra: str) -> set:
    _, token = collector.partner("acme")
    agent = make_agent(extra_config=extra)
    agent.enroll(collector.url, token)
    out = tmp_path / "modules.txt"
    agent.env = {"PYTHONPATH": PROBE, "VIGIL_MODULES_OUT": str(out)}
    agent.start(log_level="warning")
    wait_until(lambda: agent.polled_status()["last_success_at"], 60, what="a first report")
    agent.kill(signal.SIGTERM)
    assert agent.proc is not None and agent.proc.returncode == 0
    return set(out.read_text().split())


def test_idle_agent_with_backups_configured_loads_no_backup_stack(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    src = tmp_path / "etc"
    src.mkdir()
    (src / "vms.conf").write_text("x = 1\n")
    modules = _modules_of_idle_agent(
        collector, make_agent, tmp_path, f'\n[backup]\npaths = ["{src}"]\n'
    )
    assert "agent.backup.service" in modules  # the backup feature is on (scheduled)
    assert "agent.daemon" in modules
    assert not [m for m in BACKUP_STACK if m in modules]
    assert not [m for m in CAMERA_STACK if m in modules]  # no [cameras] table

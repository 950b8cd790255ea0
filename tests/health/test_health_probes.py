"""What the agent reads on its server: the video software's version, volumes, host."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.config import SoftwareConfig
from agent.health.host import HostProbe
from agent.health.software import read_software
from agent.health.volumes import VolumeProbe
from collector.health.ingest import prune_history
from harness.database import collector_database


def test_version_from_value_file_and_command(tmp_path: Path) -> None:
    s = read_software(SoftwareConfig(product="VMS", version="5.2.1", modules=("lpr",)))
    assert (s.product, s.version, s.source, s.modules) == ("VMS", "5.2.1", "value", ["lpr"])
    f = tmp_path / "VERSION"
    f.write_text("Product build\nVersion 7.4.2 (2026-03-01)\n")
    s = read_software(SoftwareConfig(version_file=str(f), version_regex=r"Version (\S+)"))
    assert (s.version, s.source, s.error) == ("7.4.2", "file", "")
    cmd = (sys.executable, "-c", "print('vms 9.9.1')")
    s = read_software(SoftwareConfig(version_command=cmd, version_regex=r"vms (\S+)"))
    assert (s.version, s.source) == ("9.9.1", "command")


def test_version_errors_are_reported_not_raised(tmp_path: Path) -> None:
    s = read_software(SoftwareConfig(version_file=str(tmp_path / "missing")))
    assert s.version == "" and "cannot read" in s.error
    cmd = (sys.executable, "-c", "import sys; sys.exit(3)")
    s = read_software(SoftwareConfig(version_command=cmd))
    assert s.version == "" and "exited 3" in s.error
    s = read_software(SoftwareConfig(version_command=("/nonexistent/vms",)))
    assert "version command failed" in s.error


def test_volumes_include_recording_paths_and_keep_samples(tmp_path: Path) -> None:
    rec = tmp_path / "recordings"
    rec.mkdir()
    probe = VolumeProbe(tmp_path, (str(rec),), ("squashfs", "tmpfs"))
    vols = probe.read(now=1000.0)
    mine = [v for v in vols if v.mountpoint == str(rec)]
    assert len(mine) == 1 and mine[0].recording and mine[0].total > 0
    assert mine[0].fill_rate_bytes_per_day is None  # not enough history yet
    again = VolumeProbe(tmp_path, (str(rec),), ())
    assert str(rec) in again.samples, "samples survive a restart"


def test_host_facts() -> None:
    h = HostProbe("rec-01").read()
    assert h.hostname == "rec-01" and h.cpu_count >= 1 and h.memory_total > 0
    assert 0 <= h.memory_percent <= 100 and h.uptime_s > 0 and h.agent_version


def test_history_retention_keeps_the_latest_state(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "v.db")
    now = time.time()

    def setup(c):
        c.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'p', 0)")
        c.execute(
            "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, enrolled_at, "
            "state) VALUES ('s', 1, 'h', 'm', ?, 0, '{}')",
            (b"\x00",),
        )
        for i, age in enumerate((40 * 86400, 10)):
            c.execute(
                "INSERT INTO reports (server_id, report_id, seq, collected_at, received_at) "
                "VALUES ('s', ?, ?, ?, ?)",
                (f"r{i}", i + 1, now - age, now - age),
            )

    db.write_sync(setup)
    assert db.write_sync(lambda c: prune_history(c, now - 30 * 86400)) == 1
    left = db.read_sync(lambda c: c.execute("SELECT report_id FROM reports").fetchall())
    assert [r[0] for r in left] == ["r1"]
    assert db.read_sync(lambda c: c.execute("SELECT state FROM servers").fetchone()[0])
    db.close()

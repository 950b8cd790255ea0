"""Disk health from SMART: the verdict read from smartctl's JSON, the agent reading it on
its own schedule, and a failing disk opening a ``disk_failing`` incident at the collector."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import msgspec
import pytest

from agent.config import AgentConfigError, parse
from agent.health.disks import DiskProbe, DiskSettings, disk_verdict
from harness.net import wait_until
from harness.processes import Collector
from protocol.messages import Report
from tests.contracts.test_entitlements import contract_file

RECORDED = Path(__file__).parent / "smartctl"
FAKE = Path(__file__).parent / "fake_smartctl.py"


def recorded(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())


def test_a_healthy_disk_passes_with_its_temperature_and_hours() -> None:
    d = disk_verdict(recorded("sda"), "/dev/sda", 100.0)
    assert (d.health, d.failing, d.warnings) == ("passed", [], [])
    assert (d.device, d.protocol, d.model, d.serial) == (
        "/dev/sda",
        "ATA",
        "WDC WD80PURZ-85YNPY0",
        "VGH1A2B3",
    )
    assert (d.temperature_c, d.power_on_hours, d.checked_at) == (36.0, 9123, 100.0)


def test_a_prefail_attribute_at_its_threshold_is_failing() -> None:
    d = disk_verdict(recorded("sdb"), "/dev/sdb", 100.0)
    assert d.health == "failing"
    assert d.failing[-1] == "overall self-assessment: FAILED"
    assert any(
        f.startswith("Reallocated_Sector_Ct at or below its threshold (9 <= 10)") for f in d.failing
    )
    # An old-age attribute that failed in the past and counted sectors are warnings only.
    assert "Airflow_Temperature_Cel was at its threshold in the past" in d.warnings
    assert "3912 reallocated sector(s) (Reallocated_Sector_Ct)" in d.warnings
    assert "24 pending sector(s) (Current_Pending_Sector)" in d.warnings


def test_an_nvme_critical_warning_is_failing_and_wear_is_a_warning() -> None:
    d = disk_verdict(recorded("nvme0"), "/dev/nvme0", 100.0)
    assert d.health == "failing" and d.protocol == "NVMe"
    assert "NVMe critical warning: available spare below threshold" in d.failing
    assert "2 NVMe media error(s)" in d.warnings and "endurance 93 % used" in d.warnings


def test_a_disk_smartctl_cannot_open_is_unknown_with_the_reason() -> None:
    d = disk_verdict(recorded("denied"), "/dev/sda", 100.0)
    assert d.health == "unknown" and "Permission denied" in d.error


def test_garbage_from_smartctl_never_raises() -> None:
    for data in (
        {},
        {"smart_status": "yes"},
        {"smartctl": {"exit_status": 0}, "smart_status": {}},
        {"smart_status": {"passed": True}, "ata_smart_attributes": {"table": [1, None, {}]}},
        {"smart_status": {"passed": True}, "nvme_smart_health_information_log": {}},
    ):
        d = disk_verdict(data, "/dev/x", 1.0)  # type: ignore[arg-type]
        assert d.health in ("unknown", "passed")
        msgspec.json.decode(msgspec.json.encode(d), type=type(d))


def fake_command(folder: Path) -> tuple[str, ...]:
    return (sys.executable, str(FAKE), str(folder))


@pytest.fixture
def disks_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "smartctl"
    shutil.copytree(RECORDED, folder)
    return folder


def test_the_probe_scans_then_reads_each_device(disks_dir: Path) -> None:
    probe = DiskProbe(DiskSettings(smartctl=fake_command(disks_dir), check_interval_s=3600))
    assert probe.read() is None and probe.due(time.time())
    disks = probe.refresh(1000.0)
    assert disks is not None
    assert [(d.device, d.health) for d in disks] == [
        ("/dev/sda", "passed"),
        ("/dev/sdb", "failing"),
        ("/dev/nvme0", "failing"),
    ]
    calls = (disks_dir / "calls.log").read_text().splitlines()
    assert calls[0] == "--json=c --scan-open"
    assert calls[1] == "--json=c --info --health --attributes --device sat /dev/sda"
    assert not probe.due(1000.0 + 3599) and probe.due(1000.0 + 3600)


def test_configured_devices_skip_the_scan_and_a_missing_one_is_unknown(disks_dir: Path) -> None:
    settings = DiskSettings(smartctl=fake_command(disks_dir), devices=("/dev/sda:sat", "/dev/sdz"))
    disks = DiskProbe(settings).refresh(5.0) or []
    assert [(d.device, d.health) for d in disks] == [
        ("/dev/sda", "passed"),
        ("/dev/sdz", "unknown"),
    ]
    assert "Unable to detect device type" in disks[1].error
    assert "--scan-open" not in (disks_dir / "calls.log").read_text()


def test_no_smartctl_means_no_disks_and_a_broken_one_is_said(tmp_path: Path) -> None:
    off = DiskProbe(DiskSettings(enabled=False))
    assert not off.available and off.refresh() is None
    broken = DiskProbe(DiskSettings(smartctl=(str(tmp_path / "no-such-smartctl"),)))
    disks = broken.refresh(1.0) or []
    assert len(disks) == 1 and disks[0].health == "unknown" and "no-such-smartctl" in disks[0].error


def test_the_disks_table_is_checked() -> None:
    cfg = parse(
        {"disks": {"smartctl": ["sudo", "-n", "/usr/sbin/smartctl"], "check_interval_s": 600}},
        "a.toml",
    )
    assert cfg.disks.smartctl == ("sudo", "-n", "/usr/sbin/smartctl")
    assert cfg.disks.check_interval_s == 600.0
    for bad, key in (
        ({"smartctl": 3}, "disks.smartctl"),
        ({"enabled": "yes"}, "disks.enabled"),
        ({"check_interval_s": 0}, "disks.check_interval_s"),
        ({"sudo": True}, "disks.sudo"),
    ):
        with pytest.raises(AgentConfigError) as err:
            parse({"disks": bad}, "a.toml")
        assert err.value.key == key


def test_a_report_without_disks_still_decodes() -> None:
    # Older agents send no "disks": the collector reads None (SMART not read).
    rep = msgspec.json.decode(
        b'{"report_id":"r-1","seq":1,"collected_at":1.0,"host":{"hostname":"h"}}', type=Report
    )
    assert rep.disks is None


def test_a_failing_disk_reaches_the_partner_and_opens_one_incident(
    collector: Collector, make_agent, tmp_path: Path, disks_dir: Path
) -> None:
    key, token = collector.partner("acme")
    collector.cli(
        "contracts", "import", str(contract_file(tmp_path, "maintenance-support", "LIC-D"))
    )
    (disks_dir / "nvme0.json").unlink()  # one healthy disk and one failing one
    command = json.dumps(list(fake_command(disks_dir)))
    agent = make_agent(
        extra_config='licence_id = "LIC-D"\n'
        f"[disks]\nsmartctl = {command}\ncheck_interval_s = 3600\n"
    )
    server_id = agent.enroll(collector.url, token)
    collector.cli("server", "interval", "--partner", "acme", "1s")
    agent.start()

    def disks() -> list[dict]:
        state = collector.api(key, f"/api/v1/servers/{server_id}")[1]
        return state.get("disks") or []

    wait_until(lambda: len(disks()) == 3, 60, what="the disks in the server view")
    view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    assert view["status"] == "critical"
    assert any(
        r.startswith("disk /dev/sdb failing: Reallocated_Sector_Ct") for r in view["status_reasons"]
    )
    by_device = {d["device"]: d for d in disks()}
    assert by_device["/dev/sda"]["health"] == "passed"
    assert by_device["/dev/sdb"]["health"] == "failing"
    assert by_device["/dev/nvme0"]["health"] == "unknown"

    def failing_incidents() -> list[dict]:
        items = collector.api(key, "/api/v1/incidents")[1]["incidents"]
        return [i for i in items if i["source"] == "finding:disk_failing"]

    wait_until(lambda: failing_incidents(), 30, what="the disk_failing incident")
    time.sleep(3)  # several more reports with the same failing disk
    incidents = failing_incidents()
    assert len(incidents) == 1, "one incident while it stays open"
    assert incidents[0]["priority"] == "high" and incidents[0]["server_id"] == server_id
    assert "/dev/sdb" in incidents[0]["title"] and "Reallocated_Sector_Ct" in incidents[0]["title"]
    # SMART is read once per check interval, not with every report.
    scans = (disks_dir / "calls.log").read_text().count("--scan-open")
    assert scans == 1
    assert agent.status()["disks"]["by_health"] == {"passed": 1, "failing": 1, "unknown": 1}
    assert "disks        1 failing, 1 passed, 1 unknown (SMART" in agent.cmd("status").stdout


# --- recorded outputs of real disks, and the pre-failing rules ------------------------------

REAL = Path(__file__).parent / "smartctl_recorded"


def real(name: str) -> dict:
    return json.loads((REAL / f"{name}.json").read_text())


def test_a_recorded_healthy_disk_passes() -> None:
    d = disk_verdict(real("WDC_WD20EFRX-68EUZN0_17"), "/dev/sdb", 1.0)
    assert (d.health, d.failing, d.warnings) == ("passed", [], [])
    assert (d.model, d.power_on_hours) == ("WDC WD20EFRX-68EUZN0", 47657)


def test_reallocated_sectors_warn_until_they_grow_then_the_disk_is_failing() -> None:
    data = real("ST3500418AS_12")
    d = disk_verdict(data, "/dev/sda", 1.0)
    assert d.health == "passed"
    assert d.warnings == ["304 reallocated sector(s) (Reallocated_Sector_Ct)"]
    # The same count as first read: still a warning.
    assert disk_verdict(data, "/dev/sda", 1.0, {5: 304}).health == "passed"
    # 120 when first read, 304 now: growing, so failing, naming the attribute.
    d = disk_verdict(data, "/dev/sda", 1.0, {5: 120, 197: 0})
    assert d.health == "failing"
    assert d.failing == ["Reallocated_Sector_Ct grew from 120 to 304 reallocated sector(s)"]


def test_pending_and_offline_uncorrectable_growth_are_failing() -> None:
    data = real("ST3500418AS_12")
    for attr in data["ata_smart_attributes"]["table"]:
        if attr["id"] in (197, 198):
            attr["raw"]["value"] = 8
    d = disk_verdict(data, "/dev/sda", 1.0, {5: 304, 197: 0, 198: 8})
    assert d.failing == ["Current_Pending_Sector grew from 0 to 8 pending sector(s)"]
    assert "8 offline uncorrectable sector(s) (Offline_Uncorrectable)" in d.warnings


def test_a_prefail_attribute_failed_in_the_past_is_failing() -> None:
    data = real("ST3500418AS_12")
    (attr,) = [a for a in data["ata_smart_attributes"]["table"] if a["id"] == 5]
    attr["when_failed"] = "past"
    attr["worst"] = 30  # below the threshold of 36 once; recovered since
    d = disk_verdict(data, "/dev/sda", 1.0)
    assert d.health == "failing"
    assert d.failing == [
        "Reallocated_Sector_Ct was at or below its threshold in the past (worst 30 <= 36)"
    ]
    # An old-age attribute failed in the past stays a warning (see sdb.json).
    assert "Airflow_Temperature_Cel was at its threshold in the past" in (
        disk_verdict(recorded("sdb"), "/dev/sdb", 1.0).warnings
    )


def test_the_probe_keeps_the_first_counts_across_restarts(tmp_path: Path) -> None:
    folder = tmp_path / "smartctl"
    folder.mkdir()
    data = real("ST3500418AS_12")
    (folder / "sda.json").write_text(json.dumps(data))
    settings = DiskSettings(smartctl=fake_command(folder), devices=("/dev/sda:sat",))
    state = tmp_path / "state"
    state.mkdir()
    (first,) = DiskProbe(settings, state).refresh(1.0) or []
    assert first.health == "passed"
    # The agent restarts; meanwhile the disk reallocated 16 more sectors.
    for attr in data["ata_smart_attributes"]["table"]:
        if attr["id"] == 5:
            attr["raw"]["value"] = 320
    (folder / "sda.json").write_text(json.dumps(data))
    (later,) = DiskProbe(settings, state).refresh(2.0) or []
    assert later.health == "failing"
    assert later.failing == ["Reallocated_Sector_Ct grew from 304 to 320 reallocated sector(s)"]
    # A damaged state file only loses the history: the next reading starts it again.
    (state / "disk-sectors.json").write_text("{not json")
    (again,) = DiskProbe(settings, state).refresh(3.0) or []
    assert again.health == "passed"

"""Disk health from SMART: recorded-format ``smartctl --json`` answers of healthy, failing
and pre-failing disks judged by the agent; a failing disk reported to a real collector
opens the ``disk_failing`` incident and a healthy one clears it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from msgspec import to_builtins

from agent.health.smart import SmartProbe, judge, read_disks
from tests.core.signed import batch, post_signed, report, session_for
from tests.processes import Collector

FIXTURES = Path(__file__).parent / "smartctl"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_healthy_disks_are_ok() -> None:
    ata = judge(load("ata-healthy"))
    assert (ata.device, ata.health, ata.reasons) == ("/dev/sda", "ok", [])
    assert (ata.model, ata.serial, ata.temperature_c, ata.power_on_hours) == (
        "WDC WD40PURZ-85AKKY0",
        "WD-WX12D80HE4K1",
        38.0,
        31822,
    )
    assert judge(load("nvme-healthy")).health == "ok"


def test_a_failing_disk_names_its_attributes() -> None:
    d = judge(load("ata-failing"))
    assert d.health == "failing"
    assert d.reasons[0] == "SMART overall-health self-assessment: FAILED"
    assert "Reallocated_Sector_Ct at 98 is at or below its threshold 140" in d.reasons
    assert "12 pending sectors" in d.reasons


def test_reallocated_sectors_are_pre_failing_and_unreadable_is_unknown() -> None:
    d = judge(load("ata-pre-failing"))
    assert (d.health, d.reasons) == ("pre_failing", ["88 reallocated sectors"])
    denied = judge(load("ata-permission-denied"))
    assert denied.health == "unknown" and "Permission denied" in denied.error


def test_every_scanned_disk_is_read_with_its_type_and_the_answer_is_kept() -> None:
    calls: list[list[str]] = []
    answers = {"/dev/sda": "ata-healthy", "/dev/sdb": "ata-failing", "/dev/nvme0": "nvme-healthy"}

    def run(args: list[str]) -> dict:
        calls.append(args)
        return load("scan") if args == ["--scan"] else load(answers[args[-1]])

    probe = SmartProbe(every_s=3600, runner=run)
    disks = probe.read(now=0.0)
    assert [(d.device, d.health) for d in disks or []] == [
        ("/dev/sda", "ok"),
        ("/dev/sdb", "failing"),
        ("/dev/nvme0", "ok"),
    ]
    assert calls[-1] == ["-d", "nvme", "-i", "-H", "-A", "/dev/nvme0"]
    assert probe.read(now=1800.0) is disks and len(calls) == 4  # kept for an hour
    assert read_disks(lambda args: {}) == []  # a scan that answers nothing


def test_the_agent_does_not_import_subprocess_for_smart_when_idle() -> None:
    code = (
        "import sys; import agent.health.smart as s; "
        "print(int('subprocess' in sys.modules), int('shutil' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_a_failing_disk_opens_disk_failing_and_a_healthy_one_clears_it(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    today = time.strftime("%Y-%m-%d")
    f = tmp_path / "c.csv"
    f.write_text(
        "contract_id,customer,partner,plan,licence_ids,start\n"
        f"P-1,Airport,acme,premium-24x7,LIC-P,{today}\n"
    )
    collector.cli("contracts", "import", str(f))
    agent = make_agent(extra_config='licence_id = "LIC-P"\n')
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    failing = [to_builtins(judge(load("ata-failing")))]
    healthy = [to_builtins(judge(load("ata-healthy")))]
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1, disks=failing)))
    (inc,) = collector.api(key, "/api/v1/incidents")[1]["incidents"]
    assert inc["source"] == "finding:disk_failing" and inc["priority"] == "P1"
    assert "/dev/sdb failing" in inc["title"]
    view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    assert view["disks"][0]["health"] == "failing"
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(2, disks=failing)))
    assert len(collector.api(key, "/api/v1/incidents")[1]["incidents"]) == 1
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(3, disks=healthy)))
    shown = collector.api(key, f"/api/v1/incidents/{inc['id']}")[1]
    assert shown["state"] == "resolved" and shown["awaiting_acceptance"] is True

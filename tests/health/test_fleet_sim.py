"""``bench/fleet_sim.py`` runs: three simulated agents, enrolled for real, report and upload
backups to a real collector for a few seconds; its JSON parses and shows no error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_three_agents_for_a_few_seconds_report_and_back_up_without_errors() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fleet_sim.py"),
            "--agents=3",
            "--seconds=4",
            "--interval=1",
            "--cameras=4",
            "--camera-change-rate=0.5",
            "--backup-every=2",
            "--backup-size=64KiB",
            "--chunk-size=16KiB",
            "--sample-every=2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == 0, result["errors_by_kind"]
    assert result["agents"] == 3 and result["reports"] > 0 and result["backups"] > 0
    assert result["p99_ms"] is not None and result["p50_ms"] <= result["p99_ms"]
    assert result["objects_growth_bytes"] >= result["backups"] * 64 * 1024
    assert result["samples"] and all(s["collector_rss_mib"] > 0 for s in result["samples"])
    assert "0 errors" in out.stdout


def test_help_documents_every_option() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet_sim.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in (
        "--agents",
        "--seconds",
        "--interval",
        "--cameras",
        "--camera-change-rate",
        "--backup-every",
        "--backup-size",
        "--chunk-size",
        "--database",
        "--connections",
        "--enroll-concurrency",
        "--sample-every",
        "--json",
    ):
        assert option in out.stdout, option

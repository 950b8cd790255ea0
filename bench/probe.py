"""Camera probe cycle against 256 simulated cameras (the simulator in its own process).

    .venv/bin/python bench/probe.py [--count 256] [--cycles 3] [--faults SPEC] [--timeout 10]

Prints the first cycle (WSDL parsing and cold connections included) and the steady cycles'
wall time, the agent process's RSS and CPU time, against its budget: a full
cycle <= 10 s, the agent <= 90 MB RSS with 256 cameras, <= 2% of a core at a 60 s interval.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.cameras import CameraMonitor, parse_camera_config  # noqa: E402

BUDGET_CYCLE_S = 10.0
BUDGET_RSS_MB = 90.0
BUDGET_CPU_PCT = 2.0
INTERVAL_S = 60.0


def start_simulator(count: int, faults: str) -> tuple[subprocess.Popen, dict]:
    cmd = [sys.executable, "-m", "sim.cli", "cameras", "--count", str(count), "--json"]
    if faults:
        cmd += ["--faults", faults]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise SystemExit("simulator did not start")
    return proc, json.loads(line)


def settings_for(
    doc: dict, folder: Path, timeout_s: float, concurrency: int, inventory_every: int = 10
):
    cred = folder / "camera-credentials.toml"
    first = doc["cameras"][0]
    cred.write_text(
        f'[default]\nusername = "{first["username"]}"\npassword = "{first["password"]}"\n'
    )
    cred.chmod(0o600)
    table = {
        "credentials_file": str(cred),
        "timeout_s": timeout_s,
        "concurrency": concurrency,
        "inventory_every": inventory_every,
        "device": [
            {"address": c["host"], "port": c["port"], "id": f"cam{c['index']}"}
            for c in doc["cameras"]
        ],
    }
    return parse_camera_config(table, str(folder / "agent.toml"))


async def run(args: argparse.Namespace) -> int:
    me = psutil.Process()
    rss_start = me.memory_info().rss
    proc, doc = start_simulator(args.count, args.faults)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = settings_for(
                doc, Path(tmp), args.timeout, args.concurrency, args.inventory_every
            )
            monitor = CameraMonitor(settings, tmp)
            figures = []
            sim = psutil.Process(proc.pid)
            try:
                for _ in range(args.cycles):
                    sim0 = sum(sim.cpu_times()[:2])
                    cpu0, wall0 = me.cpu_times(), time.perf_counter()
                    cameras = await monitor.probe_cycle()
                    wall = time.perf_counter() - wall0
                    cpu1 = me.cpu_times()
                    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                    sim_cpu = sum(sim.cpu_times()[:2]) - sim0
                    verdicts = collections.Counter(c.verdict for c in cameras)
                    healthy_max = max(
                        (r.duration_ms for r in monitor.last_results.values() if r.outcome == "ok"),
                        default=0.0,
                    )
                    figures.append(
                        (wall, cpu, me.memory_info().rss, verdicts, healthy_max, sim_cpu)
                    )
            finally:
                await monitor.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    print(
        f"camera probe cycle: {args.count} simulated cameras, concurrency {args.concurrency}, "
        f"timeout {args.timeout:g} s,\n  inventory every {args.inventory_every} probe(s), "
        f"simulator in its own process, {os.cpu_count()} cores"
    )
    if args.faults:
        print(f"faults: {args.faults}")
    print(f"agent RSS before the monitor: {rss_start / 2**20:.1f} MB")
    for i, (wall, cpu, rss, verdicts, healthy_max, sim_cpu) in enumerate(figures):
        label = "first " if i == 0 else "steady"
        summary = ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
        print(
            f"  cycle {i + 1} ({label}): wall {wall:6.2f} s  cpu {cpu:5.2f} s  "
            f"rss {rss / 2**20:6.1f} MB  slowest ok camera {healthy_max / 1000:5.2f} s  "
            f"(simulator cpu {sim_cpu:4.2f} s)  [{summary}]"
        )
    first_wall = figures[0][0]
    steady = figures[1:] or figures
    steady_wall = max(f[0] for f in steady)
    steady_cpu = sum(f[1] for f in steady) / len(steady)
    peak_rss = max(f[2] for f in figures) / 2**20
    cpu_pct = 100 * steady_cpu / INTERVAL_S
    ok = True

    def line(name: str, value: float, budget: float, unit: str) -> None:
        nonlocal ok
        passed = value <= budget
        ok = ok and passed
        print(
            f"{name:38} {value:8.2f} {unit:4} budget <= {budget:g} {unit}  "
            f"ratio {value / budget:5.2f}  {'PASS' if passed else 'FAIL'}"
        )

    # A camera that never answers costs its timeout (and delays no other): with faults,
    # a cycle may last one timeout, plus a margin for the healthy cameras behind it.
    cycle_budget = BUDGET_CYCLE_S if not args.faults else max(BUDGET_CYCLE_S, args.timeout + 1)
    line("first cycle wall time", first_wall, cycle_budget, "s")
    line("steady cycle wall time (worst)", steady_wall, cycle_budget, "s")
    line("agent peak RSS", peak_rss, BUDGET_RSS_MB, "MB")
    line(f"steady CPU at a {INTERVAL_S:g} s interval", cpu_pct, BUDGET_CPU_PCT, "%")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--faults", default="")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--inventory-every",
        type=int,
        default=10,
        help="re-read services/profiles/stream URI every N probes (1 = every probe)",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

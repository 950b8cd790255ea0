"""Agent steady state without cameras: RSS and CPU, against the budget
(<= 45 MB RSS with no cameras, <= 2 % of one core averaged at a 60 s interval).

    .venv/bin/python bench/agent.py [--seconds 120] [--interval 60]

Starts a collector and a real `vigil-agent run` (separate processes, 127.0.0.1), lets the
agent warm up for one report, then samples the agent's RSS and CPU time (user + system)
over the measuring window. With the default 60 s interval the window covers two reports,
so the CPU share is the real average at that interval, idle time included.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.net import wait_until
from harness.processes import Agent, Collector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="measuring window")
    ap.add_argument("--interval", type=int, default=60, help="report interval (s)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-agent-"))
    collector = Collector(tmp / "collector").start()
    try:
        collector.cli("partner", "add", "bench")
        collector.cli("server", "interval", "--partner", "bench", f"{args.interval}s")
        token = collector.last_line("token", "create", "--partner", "bench")
        agent = Agent(tmp / "agent")
        agent.enroll(collector.url, token)
        agent.start(log_level="warning")
        assert agent.proc is not None
        wait_until(lambda: agent.status()["last_success_at"], 60, what="a first report")
        proc = psutil.Process(agent.proc.pid)
        t0 = time.monotonic()
        c0 = sum(proc.cpu_times()[:2])
        rss_peak = 0
        while time.monotonic() - t0 < args.seconds:
            rss_peak = max(rss_peak, proc.memory_info().rss)
            time.sleep(1.0)
        cpu = sum(proc.cpu_times()[:2]) - c0
        wall = time.monotonic() - t0
        rss_end = proc.memory_info().rss
        rss_peak = max(rss_peak, rss_end)
        reports = agent.status()["last_report_seq"]
        agent.kill(signal.SIGTERM)
    finally:
        collector.stop()
    share = cpu / wall * 100
    result = {
        "interval_s": args.interval,
        "window_s": round(wall, 1),
        "reports_sent": reports,
        "rss_mb_end": round(rss_end / 2**20, 1),
        "rss_mb_peak": round(rss_peak / 2**20, 1),
        "cpu_s": round(cpu, 3),
        "cpu_percent_of_one_core": round(share, 3),
        "budget": {"rss_mb": 45, "cpu_percent": 2.0},
    }
    print(json.dumps(result, indent=2))
    ok = rss_peak / 2**20 <= 45 and share <= 2.0
    print(
        f"\nagent without cameras: peak RSS {rss_peak / 2**20:.1f} MB (budget 45), "
        f"CPU {share:.2f} % of one core at a {args.interval} s interval (budget 2 %) -> "
        f"{'OK' if ok else 'OVER BUDGET'}"
    )
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()

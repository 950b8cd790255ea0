"""CPU one short command of each tool costs: start-up (imports) plus the command's work.

    .venv/bin/python bench/startup.py [--runs 6]

Runs ``vigil-collector apikey create`` against a fresh data directory with one partner,
``vigil-agent status --json`` against an empty state directory and ``vigil-backup --help``,
each ``--runs`` times, and prints the mean CPU seconds (user + system, from
``getrusage(RUSAGE_CHILDREN)``) per run: the figure that adds up when tests or scripts start
the tools many times, and that the wall clock on a busy machine hides.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def cpu_per_run(cmd: list[str], runs: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return used / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vigil-startup-"))
    data = root / "collector"
    subprocess.run(
        [str(BIN / "vigil-collector"), "partner", "add", "acme", "--data", str(data)],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    config = root / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{root / "agent"}"\nmachine_id = "bench"\n')
    commands = {
        "vigil-collector apikey create": [
            str(BIN / "vigil-collector"),
            "apikey",
            "create",
            "--partner",
            "acme",
            "--data",
            str(data),
        ],
        "vigil-agent status --json": [
            str(BIN / "vigil-agent"),
            "status",
            "--json",
            "--config",
            str(config),
        ],
        "vigil-backup --help": [str(BIN / "vigil-backup"), "--help"],
    }
    for name, cmd in commands.items():
        print(f"{name:32} {cpu_per_run(cmd, args.runs):.3f} s CPU per run")


if __name__ == "__main__":
    main()

"""What each import costs the agent: resident memory and time, in the order a running
agent loads them, then what a backup run adds.

    .venv/bin/python bench/imports.py

Each step runs in one fresh interpreter that imports the steps before it first, so a
figure is what that import adds on top (shared dependencies count for the first step
that loads them). RSS is the process's resident set from ``/proc/self/statm``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEPS: list[tuple[str, str]] = [
    ("asyncio (with ssl, which asyncio loads)", "import asyncio, ssl"),
    ("aiohttp", "import aiohttp"),
    ("msgspec", "import msgspec"),
    ("APScheduler (asyncio scheduler)", "import apscheduler.schedulers.asyncio"),
    ("psutil", "import psutil"),
    ("PyNaCl (Ed25519, X25519)", "import nacl.signing, nacl.public, nacl.bindings"),
    ("agent: cli, daemon, client, health", "import agent.cli, agent.daemon"),
    ("agent: backup scheduling (configured)", "import agent.backup.service"),
    ("-- a backup runs: cryptography (age, ChaCha20)", "import protocol.backup_archive"),
    ("-- a backup runs: zstandard, tarfile, archive", "import agent.backup.archive"),
    (
        "-- instead of PyNaCl: cryptography for Ed25519",
        "import cryptography.hazmat.primitives.asymmetric.ed25519",
    ),
]

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
for code in {before!r}:
    exec(code)
r0, t0 = rss(), time.perf_counter()
exec({code!r})
mb, ms = (rss() - r0) / 2**20, (time.perf_counter() - t0) * 1e3
print(json.dumps({{"mb": mb, "ms": ms, "base": r0 / 2**20}}))
"""


def main() -> None:
    done: list[str] = []
    idle: list[str] = []
    bare = None
    rows = []
    for label, code in STEPS:
        before = idle if label.startswith("-- instead") else done
        src = CHILD.format(root=str(ROOT), before=before, code=code)
        out = subprocess.run(
            [sys.executable, "-c", src], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout)
        bare = r["base"] if bare is None else bare
        rows.append((label, r["mb"], r["ms"]))
        done.append(code)
        if not label.startswith("--"):
            idle = [*done]
    print(f"{'import':<50} {'RSS MB':>7} {'ms':>7}")
    print(f"{'python itself':<50} {bare:7.1f} {'':>7}")
    total = bare
    for label, mb, ms in rows:
        print(f"{label:<50} {mb:+7.1f} {ms:7.1f}")
        if not label.startswith("--"):
            total += mb
    print(f"{'idle agent imports, total':<50} {total:7.1f}")


if __name__ == "__main__":
    main()

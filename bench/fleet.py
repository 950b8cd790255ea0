"""Fleet view with 10,000 servers: server time of the page and of GET /api/v1/servers.

    .venv/bin/python bench/fleet.py [--servers 10000] [--repeat 5]

Fills a collector database (one partner, N servers with a realistic latest state: two
volumes, 32 cameras' counts, a backup policy, contracts for every server) and times the
partner's fleet page and server list in-process through aiohttp's test client on
127.0.0.1 (server time = the handler's wall time, measured around the request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from collector import secrets_store
from collector.config import load_config
from harness.app import app_client


def fill(conn, n: int) -> str:
    p = secrets_store.add_partner(conn, "bench")
    key = secrets_store.create_api_key(conn, p.id)
    now = time.time()
    rows = []
    for i in range(n):
        state = {
            "collected_at": now - 30,
            "seq": 100,
            "host": {"hostname": f"rec-{i:05d}", "os": "Debian 12", "agent_version": "0.1.0"},
            "volumes": [
                {
                    "mountpoint": "/",
                    "total": 100 << 30,
                    "used": (20 + i % 70) << 30,
                    "free": 10 << 30,
                },
                {
                    "mountpoint": "/video",
                    "total": 8 << 40,
                    "used": (i % 97) << 36,
                    "free": 1 << 40,
                    "recording": True,
                    "full_at": now + (i % 30) * 86400,
                },
            ],
            "software": {"product": "VMS", "version": "2026.2.1"},
            "camera_counts": {"ok": 30, "unreachable": i % 3, "degraded": i % 2},
        }
        rows.append(
            (
                f"srv_{i:08d}",
                p.id,
                f"rec-{i:05d}",
                f"m{i}",
                f"LIC-{i}",
                b"k" * 32,
                now - 86400,
                now - 30 - (i % 500),
                json.dumps(state),
            )
        )
    conn.executemany(
        "INSERT INTO servers (id, partner_id, hostname, machine_id, licence_id, public_key, "
        "enrolled_at, last_seen, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return key


async def measure(data: Path, key: str, page: str, repeat: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"/": [], "/api/v1/servers": []}
    async with app_client(data) as client:
        for path in out:
            headers = {"Authorization": f"Bearer {key}", "Cookie": f"vigil_session={page}"}
            for _ in range(repeat + 1):
                t = time.perf_counter()
                r = await client.get(path, headers=headers, allow_redirects=False)
                body = await r.read()
                out[path].append(time.perf_counter() - t)
                assert r.status == 200, (path, r.status, body[:200])
            out[path] = out[path][1:]  # the first request warms caches
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="vigil-bench-fleet-"))
    from collector.storage import open_database

    db = open_database(load_config(None, data))
    key = db.write_sync(lambda c: fill(c, args.servers))
    page = db.write_sync(lambda c: secrets_store.create_page_session(c, key, 3600))
    db.close()
    assert page is not None
    times = asyncio.run(measure(data, key, page, args.repeat))
    for path, ts in times.items():
        print(
            f"{path:18} {args.servers} servers: median {statistics.median(ts) * 1000:.0f} ms, "
            f"max {max(ts) * 1000:.0f} ms (budget 200 ms)"
        )


if __name__ == "__main__":
    main()

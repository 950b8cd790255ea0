"""The portal with 10,000 servers: server time of the fleet, incidents and contracts
pages and of GET /api/v1/servers.

    .venv/bin/python bench/fleet.py [--servers 10000] [--repeat 5] [--incidents-every 10]
        [--no-contracts] [--parts] [--uncached] [--reported-between]

Fills a collector database (one partner, N servers with a realistic latest state: two
volumes, 32 cameras' counts, a backup policy, a contract for every server with ten
servers per customer, and an open incident on every tenth server) and times the pages and
the server list in-process through aiohttp's test client on 127.0.0.1 (server time = the
handler's wall time, measured around the request), signed in as the partner's admin.
Beside the wall time it prints the CPU time the process spent on the request (client and
server, every thread): on a shared machine the wall time grows with the load average,
the CPU time much less. ``--uncached`` builds the fleet views and the monthly report
anew for every read (``collector.health.fleet_cache`` and
``collector.contracts.report_cache`` bypassed, as before they existed): run it and a
plain run one after the other to compare under the same load. (Both in one process do not
compare: the second app pays for the first one's garbage and threads.) The first request
of each path warms the caches and is left out of the median and maximum; its time is
printed apart ("first").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from collector import secrets_store
from collector.accounts import store
from collector.config import load_config
from collector.contracts import repository as repo
from collector.contracts.incidents import open_incident
from collector.contracts.plans import get_plan
from collector.contracts.terms import Contract
from collector.http.appkeys import DB
from harness.app import app_client

ENROLLED_DAYS_AGO = 400
"""Servers enrolled this long ago: the monthly report counts every day of last month."""


def fill_contracts(conn, partner: str, n: int, incidents_every: int, now: float) -> None:
    """A contract per server (ten servers per customer) and some open incidents."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    plan = get_plan("maintenance-support")
    for i in range(n):
        c = Contract(
            id=f"C{i:06d}",
            customer=f"cust{i // 10:04d}",
            partner=partner,
            plan=plan.name,
            licence_ids=(f"LIC-{i}",),
            start=today - dt.timedelta(days=i % 700),
        )
        repo.record_version(conn, c.id, partner, c, now, "bench")
        if incidents_every and i % incidents_every == 0:
            inc = open_incident(
                f"INC-{i:08d}",
                plan,
                "high",
                dt.datetime.fromtimestamp(now - (i % 96) * 3600, dt.UTC),
                contract_id=c.id,
                server_id=f"srv_{i:08d}",
                title="bench",
                by=partner,
            )
            repo.insert_incident(conn, inc, partner, now)


def fill(conn, n: int, incidents_every: int = 10, contracts: bool = True) -> str:
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
                now - ENROLLED_DAYS_AGO * 86400,
                now - 30 - (i % 500),
                json.dumps(state),
            )
        )
    conn.executemany(
        "INSERT INTO servers (id, partner_id, hostname, machine_id, licence_id, public_key, "
        "enrolled_at, last_seen, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    if contracts:
        fill_contracts(conn, p.name, n, incidents_every, now)
    return key


PATHS = (
    "/",
    "/incidents",
    "/incidents?state=all",
    "/contracts",
    "/contracts/report",
    "/api/v1/servers",
)


def _sign_in(conn, key: str) -> str:
    owner = store.key_owner(conn, key)
    assert owner is not None
    return store.create_session(conn, owner.user.id, 3600, api_key_id=owner.key_id)


async def measure(
    data: Path, key: str, page: str, repeat: int, reported_between: bool = False
) -> dict[str, list[tuple[float, float]]]:
    """(wall time, CPU time of this process) per request, per path; with
    ``reported_between``, every server has reported once before each request (outside
    the timing), as when a page is opened again a minute later."""
    out: dict[str, list[tuple[float, float]]] = {p: [] for p in PATHS}
    async with app_client(data) as client:
        for path in out:
            headers = {"Authorization": f"Bearer {key}", "Cookie": f"vigil_session={page}"}
            for _ in range(repeat + 1):
                if reported_between:
                    await client.app[DB].write(_everyone_reported)
                t, cpu = time.perf_counter(), time.process_time()
                r = await client.get(path, headers=headers, allow_redirects=False)
                body = await r.read()
                out[path].append((time.perf_counter() - t, time.process_time() - cpu))
                assert r.status == 200, (path, r.status, body[:200])
            FIRST[path] = out[path][0]
            out[path] = out[path][1:]  # the first request warms caches
    return out


def _everyone_reported(conn) -> None:
    """Each server's report position moved on, as after one report interval."""
    conn.execute(
        "UPDATE servers SET last_seen = ?, last_seq = last_seq + 1, "
        "reports_received = reports_received + 1",
        (time.time() - 1,),
    )


@contextlib.contextmanager
def fleet_cache_bypassed() -> Iterator[None]:
    """Every read builds the fleet views and the monthly report anew (what the pages did
    before the caches)."""
    from collector.contracts.report_cache import MonthlyReport, ReportCache
    from collector.contracts.views import build_report
    from collector.health.fleet_cache import FleetCache

    views, derived, report = FleetCache.views, FleetCache.derived, ReportCache.report
    FleetCache.views = lambda self, fleet, pid, now: fleet.all(pid, now)  # type: ignore[method-assign]
    FleetCache.derived = lambda self, pid, name, views, compute: compute(views)  # type: ignore[method-assign]
    ReportCache.report = lambda self, conn, *args: MonthlyReport(build_report(conn, *args))  # type: ignore[method-assign]
    try:
        yield
    finally:
        FleetCache.views, FleetCache.derived = views, derived  # type: ignore[method-assign]
        ReportCache.report = report  # type: ignore[method-assign]


FIRST: dict[str, tuple[float, float]] = {}
"""(wall time, CPU time) of each path's first request (it fills the caches)."""


def report(label: str, servers: int, times: dict[str, list[tuple[float, float]]]) -> None:
    for path, ts in times.items():
        wall = [w for w, _ in ts]
        cpu = [c for _, c in ts]
        print(
            f"{label}{path:22} {servers} servers: median {statistics.median(wall) * 1000:.0f} ms, "
            f"max {max(wall) * 1000:.0f} ms (budget 200 ms); "
            f"CPU median {statistics.median(cpu) * 1000:.0f} ms; "
            f"first {FIRST[path][0] * 1000:.0f} ms, CPU {FIRST[path][1] * 1000:.0f} ms"
        )


def parts(data: Path, repeat: int) -> None:
    """CPU time of the pieces of the fleet view and of the monthly report, called
    in-process on the filled database (no HTTP): where a page's time goes."""
    from collector.backups.status import fleet_backup_status
    from collector.contracts.report_cache import fingerprint as report_fingerprint
    from collector.contracts.reports import month_bounds
    from collector.contracts.service import coverage_by_server
    from collector.contracts.views import build_report
    from collector.health import servers
    from collector.health.fleet import FleetView
    from collector.health.fleet_cache import fingerprint
    from collector.storage import open_database

    db = open_database(load_config(None, data))
    last = dt.date.today().replace(day=1) - dt.timedelta(days=1)
    month = month_bounds(last.year, last.month, "Europe/Berlin")[:2]

    def run(conn: Any) -> None:
        pid = conn.execute("SELECT id FROM partners WHERE name = 'bench'").fetchone()[0]
        cov = coverage_by_server(conn, time.time(), "bench")
        pieces = {
            "servers.list_for": lambda: servers.list_for(conn, pid),
            "coverage_by_server": lambda: coverage_by_server(conn, time.time(), "bench"),
            "fleet_backup_status": lambda: fleet_backup_status(conn, pid, time.time(), cov),
            "FleetView.all": lambda: FleetView(conn, 60, 3).all(pid, time.time()),
            "fleet_cache check": lambda: fingerprint(conn, FleetView(conn, 60, 3), pid),
            "report_cache check": lambda: report_fingerprint(conn, "bench", *month),
            "build_report": lambda: build_report(
                conn, last.year, last.month, "customer", "bench", "Europe/Berlin", time.time()
            ),
        }
        for name, fn in pieces.items():
            fn()  # warm
            cpu = []
            for _ in range(repeat):
                t = time.process_time()
                fn()
                cpu.append(time.process_time() - t)
            print(
                f"{name:22} CPU median {statistics.median(cpu) * 1000:.0f} ms, "
                f"min {min(cpu) * 1000:.0f} ms"
            )

    db.read_sync(run)
    db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--incidents-every", type=int, default=10)
    ap.add_argument(
        "--no-contracts", action="store_true", help="no contracts nor incidents (as before)"
    )
    ap.add_argument(
        "--parts", action="store_true", help="also time the pieces in-process (CPU time)"
    )
    ap.add_argument(
        "--uncached",
        action="store_true",
        help="the fleet views and the monthly report built anew for every read",
    )
    ap.add_argument(
        "--reported-between",
        action="store_true",
        help="every server reports once before each request (a page opened again later)",
    )
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="vigil-bench-fleet-"))
    from collector.storage import open_database

    db = open_database(load_config(None, data))
    t = time.perf_counter()
    key = db.write_sync(
        lambda c: fill(c, args.servers, args.incidents_every, not args.no_contracts)
    )
    page = db.write_sync(lambda c: _sign_in(c, key))
    db.close()
    print(f"filled in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    assert page is not None
    load = os.getloadavg()[0]
    with fleet_cache_bypassed() if args.uncached else nullcontext():
        times = asyncio.run(measure(data, key, page, args.repeat, args.reported_between))
    print(f"load average (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    if args.parts:
        parts(data, args.repeat)
    report("uncached " if args.uncached else "", args.servers, times)


if __name__ == "__main__":
    main()

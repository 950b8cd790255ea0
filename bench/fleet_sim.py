"""A simulated fleet against a real collector: sustained reports/s, backup upload
throughput, latency, the collector's CPU and memory over time, database growth, errors.

    .venv/bin/python bench/fleet_sim.py [--agents 200] [--seconds 120] [--interval 60]
        [--cameras 16] [--camera-change-rate 0.02] [--backup-every 3600]
        [--backup-size 1MiB] [--database sqlite|postgresql] [--collectors N] [--json]

The collector runs as its own process (``harness.processes.Collector``, its default
configuration apart from the report interval), on SQLite in its data directory or on a
private PostgreSQL started the way the tests start theirs (``harness.database``); with
``--collectors N`` (PostgreSQL) it is ``serve --workers N``, N processes on one socket,
and the CPU and RSS shown are the sum over the parent and its workers, the database
server's CPU beside them. Each
simulated agent is enrolled for real (a one-time token, its own Ed25519 key, the agent's
``enroll`` call) and talks through the agent's own ``CollectorClient`` (sessions,
HMAC-signed requests); reports are ``protocol.messages.Report`` values with K cameras,
each sent once per interval at an offset of its own, leaving the camera inventory out
while the collector acknowledges its digest (as the agent does). A report carries a
changed camera verdict with the given probability. Every ``--backup-every`` seconds an
agent uploads a backup of ``--backup-size`` random bytes (a signed envelope, chunks,
complete: the agent's ``agent.backup.upload`` calls). A 429 or 503 is waited out as the
agent does (``Retry-After`` plus jitter) and the same report sent again.

All agents share one connection pool (``--connections``), so thousands fit one process;
the load generator's own CPU is printed beside the collector's, because on a small
machine it competes with the collector for the same cores. Every ``--sample-every``
seconds one line shows the window's reports/s, p99, the collector's CPU and RSS and the
database size; the summary follows, and with ``--json`` the last line is one JSON object
(``errors`` counts every request that did not succeed, 429s included). Agents start
together, as after a collector restart, so the first interval carries every agent's
whole camera inventory; ``p99_steady_ms`` and ``database_steady_bytes_per_server_day``
are taken after it, ``p99_ms`` over the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import msgspec
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.backup import upload
from agent.client import CollectorClient, CollectorUnavailable, enroll, retry_after
from agent.sender import after_retry_after
from collector.sizes import parse_bytes
from harness.database import private_postgres
from harness.enrolled import EnrolledAgent
from harness.processes import Collector
from protocol import backup_envelope as be
from protocol import request_auth as ra
from protocol import routes
from protocol.camera_digest import cameras_digest
from protocol.messages import (
    Camera,
    CameraProfile,
    EnrollRequest,
    HostInfo,
    Report,
    ReportAck,
    ReportBatch,
    Software,
    Volume,
    decode,
    encode,
)
from protocol.version import PROTOCOL_VERSION


def camera(i: int) -> Camera:
    return Camera(
        key=f"cam-{i:03d}",
        address=f"10.20.{i // 250}.{i % 250 + 1}",
        name=f"Camera {i}",
        site="Main building",
        verdict="ok",
        manufacturer="Axis",
        model="P3245-LVE",
        firmware="10.12.114",
        serial=f"ACCC8E{i:06X}",
        clock_offset_s=0.12,
        latency_ms=3.4,
        profiles=[
            CameraProfile(name="main", token="p0", encoding="H264", width=1920, height=1080),
            CameraProfile(name="sub", token="p1", encoding="H264", width=640, height=360),
        ],
        stream_ok=True,
        probed_at=time.time(),
    )


@dataclass
class Stats:
    """What every agent saw, over the whole run and in the current sampling window."""

    latencies: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)
    """Latencies after the first interval (every agent has sent its inventory once)."""
    steady_after: float = 0.0
    """``time.perf_counter()`` when the first interval ends."""
    window: list[float] = field(default_factory=list)
    reports: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    backups: int = 0
    backup_bytes: int = 0
    backup_seconds: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] += 1


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(len(s) * q))] * 1000, 1)


@dataclass
class SimAgent:
    ident: EnrolledAgent
    client: CollectorClient
    cameras: list[Camera]
    rng: random.Random
    seq: int = 0
    acked_digest: str | None = None
    backup_seq: int = 0

    def next_report(self, change_rate: float) -> bytes:
        self.seq += 1
        if self.cameras and self.rng.random() < change_rate:
            i = self.rng.randrange(len(self.cameras))
            cam = self.cameras[i]
            verdict = "degraded" if cam.verdict == "ok" else "ok"
            self.cameras[i] = msgspec.structs.replace(cam, verdict=verdict)
        digest = cameras_digest(self.cameras)
        unchanged = digest == self.acked_digest
        now = time.time()
        rep = Report(
            report_id=f"{self.ident.server_id}-{self.seq}-{uuid.uuid4().hex[:12]}",  # as the agent
            seq=self.seq,
            collected_at=now,
            host=HostInfo(
                hostname=f"sim-{self.ident.server_id[:8]}",
                os="Debian GNU/Linux 12",
                uptime_s=86400.0,
                cpu_percent=12.5,
                cpu_count=8,
                memory_total=16 << 30,
                memory_used=6 << 30,
                memory_percent=37.5,
                agent_version="fleet-sim",
            ),
            volumes=[
                Volume(mountpoint="/", total=100 << 30, used=20 << 30, free=80 << 30),
                Volume(
                    mountpoint="/video",
                    total=8 << 40,
                    used=6 << 40,
                    free=2 << 40,
                    recording=True,
                    fill_rate_bytes_per_day=1.2e11,
                    full_at=now + 20 * 86400,
                ),
            ],
            software=Software(product="VMS", version="2026.2.1", source="file"),
            cameras=None if unchanged else self.cameras,
            cameras_digest=digest,
            cameras_unchanged=unchanged,
        )
        return encode(ReportBatch(protocol=PROTOCOL_VERSION, reports=[rep]))

    async def send(self, body: bytes, stats: Stats, stop: asyncio.Event) -> None:
        """Send one report until it is acknowledged (429/503: wait as the agent does)."""
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                resp = await self.client.request("POST", routes.REPORTS, body)
            except CollectorUnavailable as exc:
                stats.error(f"unavailable: {str(exc)[:60]}")
                wait = after_retry_after(exc.retry_after or 5.0, self.rng)
            else:
                if resp.status == 200:
                    took = time.perf_counter() - t0
                    stats.latencies.append(took)
                    if t0 >= stats.steady_after:
                        stats.steady.append(took)
                    stats.window.append(took)
                    stats.reports += 1
                    self.acked_digest = decode(resp.body, ReportAck).cameras_digest
                    return
                stats.error(f"{resp.status} {resp.error()[0]}")
                if resp.status not in (429, 503):
                    return  # refused for good: counted, not retried
                wait = after_retry_after(retry_after(resp.headers) or 5.0, self.rng)
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass

    async def backup(self, size: int, chunk: int, stats: Stats) -> None:
        """One full backup of ``size`` random bytes, uploaded as the agent uploads."""
        data = self.rng.randbytes(size)
        self.backup_seq += 1
        header = be.BackupHeader(
            kind="full",
            server_id=self.ident.server_id,
            seq=self.backup_seq,
            created_at=time.time(),
            ciphertext_sha256=hashlib.sha256(data).hexdigest(),
            ciphertext_size=size,
            content_digest=hashlib.sha256(b"content" + data[:64]).hexdigest(),
            recipients=["age1fleetsimrecipient"],
        )
        envelope = be.encode(be.sign(header, self.ident.key))
        t0 = time.perf_counter()
        try:
            opened = await upload.start_upload(self.client, envelope)
            offset = opened.offset
            while offset < size:
                offset = await upload.put_chunk(
                    self.client,
                    opened.upload_id,
                    offset,
                    memoryview(data)[offset : offset + chunk],
                    opened.chunk_body_bound,
                )
            await upload.complete(self.client, opened.upload_id)
        except (upload.UploadRefused, upload.UploadUnavailable) as exc:
            stats.error(f"backup: {str(exc)[:60]}")
            return
        stats.backups += 1
        stats.backup_bytes += size
        stats.backup_seconds += time.perf_counter() - t0


async def run_agent(a: SimAgent, args: argparse.Namespace, stats: Stats, stop: asyncio.Event):
    """Report every interval from a random offset; back up every ``backup_every``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    next_report = start + a.rng.uniform(0, args.interval)
    next_backup = start + a.rng.uniform(0, args.backup_every) if args.backup_every else None
    while not stop.is_set():
        due = min(t for t in (next_report, next_backup) if t is not None)
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
            return
        except TimeoutError:
            pass
        if loop.time() >= next_report:
            next_report += args.interval
            await a.send(a.next_report(args.camera_change_rate), stats, stop)
        if next_backup is not None and loop.time() >= next_backup:
            next_backup += args.backup_every
            await a.backup(args.backup_size, args.chunk_size, stats)


async def enroll_one(
    url: str, token: str, i: int, http: aiohttp.ClientSession, cameras: int
) -> SimAgent:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    resp = await enroll(
        url,
        EnrollRequest(
            protocol=PROTOCOL_VERSION,
            token=token,
            public_key=ra.b64(pub),
            hostname=f"sim-{i:05d}",
            machine_id=f"fleet-sim-{i}-{uuid.uuid4().hex}",
            agent_version="fleet-sim",
        ),
    )
    ident = EnrolledAgent(resp.server_id, key, url)
    client = ident.client(_http=http)
    await client.open_session()
    return SimAgent(ident, client, [camera(c) for c in range(cameras)], random.Random(i))


class Sampler:
    """CPU and RSS of the collector's processes (the ``serve`` process and its workers)
    and, on PostgreSQL, of the database server's; the database size; per window."""

    def __init__(self, pid: int, db_size: Any, db_pid: int | None = None) -> None:
        self.pid = pid
        self.db_pid = db_pid
        self.db_size = db_size
        self.rows: list[dict[str, Any]] = []
        self._last = (time.monotonic(), self._cpu(pid), self._cpu(db_pid), time.process_time())

    @staticmethod
    def _tree(pid: int | None) -> list[psutil.Process]:
        if pid is None:
            return []
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    @classmethod
    def _cpu(cls, pid: int | None) -> float:
        """CPU seconds of the tree's processes alive now (a worker that died takes its
        share with it: a window where one died reads low)."""
        total = 0.0
        for proc in cls._tree(pid):
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def _rss_mib(self) -> float:
        total = 0
        for proc in self._tree(self.pid):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def sample(self, t: float, stats: Stats) -> dict[str, Any]:
        now, cpu, db_cpu = time.monotonic(), self._cpu(self.pid), self._cpu(self.db_pid)
        own = time.process_time()
        then, cpu0, db_cpu0, own0 = self._last
        self._last = (now, cpu, db_cpu, own)
        span = max(now - then, 1e-6)
        row = {
            "t_s": round(t),
            "reports_per_s": round(len(stats.window) / span, 1),
            "p99_ms": pct(stats.window, 0.99),
            "collector_cpu_percent": round(100 * (cpu - cpu0) / span, 1),
            "database_cpu_percent": round(100 * (db_cpu - db_cpu0) / span, 1)
            if self.db_pid
            else None,
            "loadgen_cpu_percent": round(100 * (own - own0) / span, 1),
            "collector_rss_mib": round(self._rss_mib(), 1),
            "database_mib": round(self.db_size() / 2**20, 3),
        }
        stats.window.clear()
        self.rows.append(row)
        return row


def sqlite_size(path: Path) -> int:
    """The bytes the database's pages hold (the WAL's included, free pages not), read
    from its own page counts: the files' sizes move with checkpoints, this does not."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def objects_size(data: Path) -> int:
    """Bytes in the local object store (the backups) under the data directory."""
    return sum(
        p.stat().st_size
        for p in data.rglob("*")
        if p.is_file() and not p.name.startswith("vigil.db")
    )


def postgres_size(dsn: str) -> Any:
    import psycopg

    def size() -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0

    return size


async def enroll_all(url: str, token: str, args: argparse.Namespace, http: aiohttp.ClientSession):
    """Every agent enrolled and its session open, ``--enroll-concurrency`` at a time."""
    gate = asyncio.Semaphore(args.enroll_concurrency)

    async def one(i: int) -> SimAgent:
        async with gate:
            return await enroll_one(url, token, i, http, args.cameras)

    return await asyncio.gather(*(one(i) for i in range(args.agents)))


async def simulate(
    collector: Collector, token: str, db_size: Any, db_pid: int | None, args: argparse.Namespace
):
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        agents = await enroll_all(collector.url, token, args, http)
        enrolled_s = time.perf_counter() - began
        print(f"enrolled {len(agents)} agents in {enrolled_s:.1f} s", flush=True)
        assert collector.proc is not None
        sampler = Sampler(collector.proc.pid, db_size, db_pid)
        db_start, objects_start = db_size(), objects_size(collector.data_dir)
        stats, stop = Stats(), asyncio.Event()
        t0 = time.perf_counter()
        stats.steady_after = t0 + args.interval
        tasks = [asyncio.create_task(run_agent(a, args, stats, stop)) for a in agents]
        print(
            "t_s  reports/s  p99_ms  collector_cpu%  db_cpu%  loadgen_cpu%  collector_rss_MiB"
            "  db_MiB",
            flush=True,
        )
        while (elapsed := time.perf_counter() - t0) < args.seconds:
            await asyncio.sleep(min(args.sample_every, args.seconds - elapsed))
            r = sampler.sample(time.perf_counter() - t0, stats)
            print(
                f"{r['t_s']:>4} {r['reports_per_s']:>10} {r['p99_ms']!s:>7} "
                f"{r['collector_cpu_percent']:>15} {r['database_cpu_percent'] or '-'!s:>8} "
                f"{r['loadgen_cpu_percent']:>13} "
                f"{r['collector_rss_mib']:>18} {r['database_mib']:>7}",
                flush=True,
            )
        stop.set()
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - t0
        grown = (db_size() - db_start, objects_size(collector.data_dir) - objects_start)
        return summary(args, stats, sampler, seconds, enrolled_s, grown)


def summary(
    args: argparse.Namespace,
    stats: Stats,
    sampler: Sampler,
    seconds: float,
    enrolled_s: float,
    grown: tuple[int, int],
) -> dict[str, Any]:
    rows = sampler.rows
    cpu = [r["collector_cpu_percent"] for r in rows]
    # Growth once every agent has sent its first report (which carries its whole camera
    # inventory): what a running fleet adds per day.
    steady = [r for r in rows if r["t_s"] >= args.interval]
    per_day = None
    if len(steady) >= 2 and steady[-1]["t_s"] > steady[0]["t_s"]:
        grown_mib = steady[-1]["database_mib"] - steady[0]["database_mib"]
        span = steady[-1]["t_s"] - steady[0]["t_s"]
        per_day = round(grown_mib * 2**20 / args.agents / span * 86400)
    # The CPU of the windows after the first interval: every agent's inventory is sent.
    after = [r["collector_cpu_percent"] for r in steady[1:]]
    db_after = [
        r["database_cpu_percent"] for r in steady[1:] if r["database_cpu_percent"] is not None
    ]
    return {
        "agents": args.agents,
        "cameras": args.cameras,
        "interval_s": args.interval,
        "database": args.database,
        "collectors": args.collectors,
        "seconds": round(seconds, 1),
        "enroll_seconds": round(enrolled_s, 1),
        "reports": stats.reports,
        "reports_per_s": round(stats.reports / seconds, 2),
        "offered_reports_per_s": round(args.agents / args.interval, 2),
        "p50_ms": pct(stats.latencies, 0.50),
        "p99_ms": pct(stats.latencies, 0.99),
        "max_ms": pct(stats.latencies, 1.0),
        "p50_steady_ms": pct(stats.steady, 0.50),
        "p99_steady_ms": pct(stats.steady, 0.99),
        "backups": stats.backups,
        "backup_mib_per_s": round(stats.backup_bytes / 2**20 / stats.backup_seconds, 2)
        if stats.backup_seconds
        else None,
        "collector_cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
        "collector_cpu_percent_max": max(cpu) if cpu else None,
        "collector_cpu_percent_steady": round(sum(after) / len(after), 1) if after else None,
        "database_cpu_percent_steady": round(sum(db_after) / len(db_after), 1)
        if db_after
        else None,
        "collector_rss_mib_max": max((r["collector_rss_mib"] for r in rows), default=None),
        "database_growth_bytes": grown[0],
        "database_steady_bytes_per_server_day": per_day,
        "objects_growth_bytes": grown[1],
        "errors": sum(stats.errors.values()),
        "errors_by_kind": dict(stats.errors),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "samples": rows,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--agents", type=int, default=200, help="simulated agents (default 200)")
    ap.add_argument(
        "--seconds", type=float, default=120.0, help="how long to run once enrolled (120)"
    )
    ap.add_argument(
        "--interval", type=int, default=60, help="report interval of every agent, s (60)"
    )
    ap.add_argument("--cameras", type=int, default=16, help="cameras per agent (16)")
    ap.add_argument(
        "--camera-change-rate",
        type=float,
        default=0.02,
        help="chance that a report carries a changed camera verdict (0.02)",
    )
    ap.add_argument(
        "--backup-every",
        type=float,
        default=3600.0,
        help="seconds between one agent's backup uploads, first at a random offset; "
        "0 = no backups (3600)",
    )
    ap.add_argument(
        "--backup-size", default="1MiB", help="bytes of each backup (a size: 1MiB, 64KiB)"
    )
    ap.add_argument("--chunk-size", default="1MiB", help="upload chunk size (1MiB)")
    ap.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the collector's storage: SQLite in its data directory, or a private "
        "PostgreSQL started for the run (Debian's server binaries) (sqlite)",
    )
    ap.add_argument(
        "--collectors",
        type=int,
        default=1,
        help="collector processes: serve --workers N (PostgreSQL only above 1) (1)",
    )
    ap.add_argument(
        "--connections", type=int, default=256, help="connection pool of all agents (256)"
    )
    ap.add_argument("--enroll-concurrency", type=int, default=16, help="enrollments at once (16)")
    ap.add_argument(
        "--sample-every", type=float, default=10.0, help="seconds per printed sample (10)"
    )
    ap.add_argument("--json", action="store_true", help="print the result as JSON, last line")
    args = ap.parse_args(argv)
    args.backup_size = parse_bytes(args.backup_size)
    args.chunk_size = parse_bytes(args.chunk_size)
    if args.agents < 1 or args.interval < 1 or args.seconds <= 0 or args.backup_size < 1:
        ap.error("--agents, --interval, --seconds and --backup-size must be positive")
    if args.collectors < 1 or (args.collectors > 1 and args.database != "postgresql"):
        ap.error("--collectors above 1 needs --database postgresql (serve --workers)")
    return args


def start_collector(
    tmp: Path, args: argparse.Namespace, stack: ExitStack
) -> tuple[Collector, Any, int | None]:
    """The collector on the chosen storage: (collector, database size function, the
    PostgreSQL server's pid or None)."""
    data = tmp / "collector"
    db_pid = None
    if args.database == "postgresql":
        server = stack.enter_context(private_postgres())
        dsn = server.new_database()
        db_size = postgres_size(dsn)
        db_pid = int((server.base / "data" / "postmaster.pid").read_text().split()[0])
    else:
        dsn = f"sqlite:///{data / 'vigil.db'}"

        def db_size() -> int:
            return sqlite_size(data / "vigil.db")

    cfg = tmp / "collector.toml"
    cfg.write_text(
        f"[collector]\nreport_interval_s = {args.interval}\n[storage]\nurl = {json.dumps(dsn)}\n"
    )
    workers = ("--workers", str(args.collectors)) if args.collectors > 1 else ()
    collector = Collector(data, config=cfg, serve_args=workers)

    collector.start()
    stack.callback(collector.stop)
    return collector, db_size, db_pid


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vigil-fleet-sim-")))
        collector, db_size, db_pid = start_collector(tmp, args, stack)
        collector.cli("partner", "add", "fleet")
        token = collector.last_line(
            "token", "create", "--partner", "fleet", "--uses", str(args.agents)
        )
        result = asyncio.run(simulate(collector, token, db_size, db_pid, args))
    print(
        f"\n{result['agents']} agents, {result['cameras']} cameras, every {args.interval} s, "
        f"{args.database}, {args.collectors} collector process(es): "
        f"{result['reports_per_s']} reports/s sustained "
        f"(offered {result['offered_reports_per_s']}), p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms (after the first interval: p99 {result['p99_steady_ms']} ms), "
        f"{result['backups']} backups at "
        f"{result['backup_mib_per_s']} MiB/s, collector CPU mean "
        f"{result['collector_cpu_percent_mean']} % (max {result['collector_cpu_percent_max']}), "
        f"steady {result['collector_cpu_percent_steady']} %, database server CPU steady "
        f"{result['database_cpu_percent_steady']} %, "
        f"RSS max {result['collector_rss_mib_max']} MiB, database +"
        f"{result['database_growth_bytes'] / 2**20:.2f} MiB (steady: "
        f"{result['database_steady_bytes_per_server_day']} bytes per server per day), objects +"
        f"{result['objects_growth_bytes'] / 2**20:.2f} MiB, {result['errors']} errors "
        f"{result['errors_by_kind'] or ''}(load average {result['load_average']})"
    )
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

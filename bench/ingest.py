"""Collector ingest: sustained authenticated reports per second, p50 and p99, for steady
reports (the camera inventory unchanged, so the agent leaves it out) and for changing ones
(64 cameras, one verdict changing in every report), each against a bare aiohttp handler
taking the same bodies in the same run.

    .venv/bin/python bench/ingest.py [--agents 64] [--seconds 15] [--cameras 64]
        [--collector-only] [--collector-config 'TOML']

The collector runs as its own process (SQLite WAL under a temporary directory, the
default configuration). N simulated agents enroll with a token, open sessions, and each
sends signed reports one after the other (a closed loop: a new report once the last was
acknowledged). Requests are signed before the clock starts so the load generator spends
its time on sockets, not on HMACs; each carries a fresh report id (no duplicate path).
A steady agent's first report carries its inventory (during the warm-up); the next ones
say ``cameras_unchanged`` with its digest, as a real agent does once the collector has
acknowledged it. Beside the rates, the collector's CPU time per report over the
measured seconds (``server_cpu_ms_per_request``). ``--collector-only`` leaves out the
bare handler (to compare one change's CPU per report quickly); ``--collector-config``
adds TOML to the collector's configuration (e.g. ``'[collector]
event_loop = "asyncio"'``), for measuring a setting against the default.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.client import CollectorClient, enroll
from harness.net import free_port, wait_until
from protocol import request_auth as ra
from protocol.camera_digest import cameras_digest
from protocol.messages import Camera, EnrollRequest

BIN = Path(sys.executable).parent

BARE_APP = """
import sys
from aiohttp import web
async def h(request):
    await request.read()
    return web.Response(body=b'{"ok":true}', content_type="application/json")
app = web.Application(client_max_size=9 * 1024 * 1024)
app.router.add_post("/api/v1/agent/reports", h)
app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def wait_http(url: str) -> None:
    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except OSError:
            return False

    wait_until(answers, 60, 0.05, url)


def camera(i: int, verdict: str = "ok") -> dict[str, object]:
    return {
        "key": f"cam-{i:03d}",
        "address": f"10.20.{i // 250}.{i % 250 + 1}",
        "port": 80,
        "name": f"Camera {i}",
        "site": "Main building",
        "verdict": verdict,
        "manufacturer": "Axis",
        "model": "P3245-LVE",
        "firmware": "10.12.114",
        "serial": f"ACCC8E{i:06X}",
        "clock_offset_s": 0.12,
        "latency_ms": 3.4,
        "profiles": [
            {
                "name": "main",
                "token": "p0",
                "encoding": "H264",
                "width": 1920,
                "height": 1080,
                "fps": 25.0,
            },
            {
                "name": "sub",
                "token": "p1",
                "encoding": "H264",
                "width": 640,
                "height": 360,
                "fps": 12.0,
            },
        ],
        "stream_ok": True,
        "probed_at": time.time(),
        "duration_ms": 210.0,
    }


def report_body(agent: int, seq: int, cameras: int, mode: str) -> bytes:
    """``mode`` "steady": the inventory once, then left out; "changing": every report
    carries it, with the degraded camera moving on by one each time."""
    cams = [camera(i) for i in range(cameras)]
    if mode == "changing":
        cams[seq % cameras]["verdict"] = "degraded"
    digest = cameras_digest(msgspec.convert(cams, list[Camera]))
    rep: dict[str, object] = {
        "report_id": f"bench-{agent}-{seq}-{os.getpid()}",
        "seq": seq,
        "collected_at": time.time(),
        "host": {
            "hostname": f"rec-{agent:03d}",
            "os": "Debian GNU/Linux 12",
            "uptime_s": 86400.0,
            "cpu_percent": 12.5,
            "cpu_count": 8,
            "memory_total": 16 << 30,
            "memory_used": 6 << 30,
            "memory_percent": 37.5,
            "agent_version": "0.1.0",
        },
        "volumes": [
            {"mountpoint": "/", "total": 100 << 30, "used": 20 << 30, "free": 80 << 30},
            {
                "mountpoint": "/video",
                "total": 8 << 40,
                "used": 6 << 40,
                "free": 2 << 40,
                "recording": True,
                "fill_rate_bytes_per_day": 1.2e11,
                "full_at": time.time() + 20 * 86400,
            },
        ],
        "software": {"product": "VMS", "version": "2026.2.1", "source": "file"},
        "cameras_digest": digest,
    }
    if mode == "steady" and seq > 1:
        rep["cameras_unchanged"] = True
    else:
        rep["cameras"] = cams
    return json.dumps({"protocol": 1, "reports": [rep]}, separators=(",", ":")).encode()


def raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def closed_loop(
    port: int,
    per_conn: list[list[bytes]],
    warmup_s: float,
    seconds: float,
    *,
    reuse: bool = False,
    server: psutil.Process | None = None,
) -> dict:
    """Each connection sends its requests one after the other until the time is up.
    ``reuse`` cycles through them (the bare handler: nothing is signed or deduplicated);
    otherwise running out of pre-signed requests before the end is reported. With
    ``server``, its CPU time (user + system) over the measured seconds is divided by the
    requests answered: a cost per request that a busy machine's scheduling moves far
    less than it moves the rates."""
    latencies: list[float] = []
    errors = 0
    done = 0
    ran_out = 0
    t_start = time.perf_counter()
    t_measure = t_start + warmup_s
    t_end = t_measure + seconds

    async def conn(requests: list[bytes]) -> None:
        nonlocal errors, done, ran_out
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for req in itertools.cycle(requests) if reuse else requests:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    break
                writer.write(req)
                status = await read_response(reader)
                t1 = time.perf_counter()
                if t0 >= t_measure:
                    if status != 200:
                        errors += 1
                    else:
                        done += 1
                        latencies.append(t1 - t0)
            else:
                ran_out += 1
        finally:
            writer.close()

    cpu: list[float] = []

    async def sample_cpu() -> None:
        if server is None:
            return
        for at in (t_measure, t_end):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            times = server.cpu_times()
            cpu.append(times.user + times.system)

    await asyncio.gather(sample_cpu(), *(conn(r) for r in per_conn))
    elapsed = min(time.perf_counter(), t_end) - t_measure
    latencies.sort()
    n = len(latencies)
    return {
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "per_second": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "connections_out_of_requests": ran_out,
        "server_cpu_ms_per_request": (
            round((cpu[1] - cpu[0]) * 1000 / done, 3) if len(cpu) == 2 and done else None
        ),
    }


async def enroll_agents(url: str, token: str, n: int) -> list[tuple[str, str, bytes]]:
    out = []
    for i in range(n):
        key = Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        resp = await enroll(
            url,
            EnrollRequest(
                protocol=1,
                token=token,
                public_key=ra.b64(pub),
                hostname=f"rec-{i:03d}",
                machine_id=f"bench-{i}",
            ),
        )
        client = CollectorClient(url, resp.server_id, key)
        await client.open_session()
        assert client._session is not None
        out.append((resp.server_id, client._session.id, client._session.key))
        await client.close()
    return out


def build_requests(
    port: int,
    sessions: list[tuple[str, str, bytes]] | None,
    count: int,
    agents: int,
    cameras: int,
    mode: str,
    first_seq: int = 1,
) -> list[list[bytes]]:
    path = "/api/v1/agent/reports"
    per_conn: list[list[bytes]] = [[] for _ in range(agents)]
    for seq in range(first_seq, first_seq + count // agents + 1):
        for a in range(agents):
            body = report_body(a, seq, cameras, mode)
            headers = {"Content-Type": "application/json"}
            if sessions is not None:
                _, sid, key = sessions[a]
                ts = f"{time.time():.3f}"
                nonce = ra.new_nonce()
                headers.update(
                    {
                        ra.H_SESSION: sid,
                        ra.H_TIMESTAMP: ts,
                        ra.H_NONCE: nonce,
                        ra.H_SIGNATURE: ra.sign_request(key, "POST", path, ts, nonce, body),
                    }
                )
            per_conn[a].append(raw_request(port, path, body, headers))
    return per_conn


def start_collector(
    tmp: Path, synchronous: str, extra_config: str = ""
) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    port = free_port()
    data = tmp / "collector"
    log = open(tmp / "collector.log", "wb")
    cfg = tmp / "collector.toml"
    cfg.write_text(f'{extra_config}\n[storage]\nsqlite_synchronous = "{synchronous}"\n')
    proc = subprocess.Popen(
        [
            str(BIN / "vigil-collector"),
            "serve",
            "--data",
            str(data),
            "--config",
            str(cfg),
            "--listen",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return proc, url, ["--data", str(data), "--config", str(cfg)]


def enrollment_token(base: list[str], uses: int) -> str:
    cli = str(BIN / "vigil-collector")
    subprocess.run([cli, "partner", "add", "bench", *base], check=True, capture_output=True)
    out = subprocess.run(
        [cli, "token", "create", "--partner", "bench", "--uses", str(uses), *base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip().splitlines()[-1]


def measure_bare(args: argparse.Namespace, mode: str) -> dict:
    """The bare handler, on its own, taking the bodies of ``mode``."""
    bport = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bport)])
    try:
        wait_http(f"http://127.0.0.1:{bport}/healthz")
        reqs = build_requests(bport, None, 20 * args.agents, args.agents, args.cameras, mode, 2)
        return asyncio.run(closed_loop(bport, reqs, args.warmup, args.seconds, reuse=True))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def summary(name: str, vigil: dict, bare: dict, body: int) -> tuple[float, str]:
    if not bare:
        return 0.0, (
            f"{name} reports: {vigil['per_second']:.0f}/s, p50 {vigil['p50_ms']} ms "
            f"({vigil['errors']} errors) | body {body} bytes | collector CPU "
            f"{vigil['server_cpu_ms_per_request']} ms a report"
        )
    ratio = vigil["per_second"] / bare["per_second"] if bare["per_second"] else 0.0
    line = (
        f"{name} reports: {vigil['per_second']:.0f}/s, p50 {vigil['p50_ms']} ms, "
        f"p99 {vigil['p99_ms']} ms ({vigil['errors']} errors) | bare aiohttp: "
        f"{bare['per_second']:.0f}/s, p50 {bare['p50_ms']} ms | ratio {ratio:.2f} | "
        f"body {body} bytes | collector CPU {vigil['server_cpu_ms_per_request']} ms a report"
    )
    return round(ratio, 3), line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=64, help="concurrent simulated agents")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--cameras", type=int, default=64)
    ap.add_argument("--rate-guess", type=int, default=4000, help="requests/s to pre-sign for")
    ap.add_argument(
        "--synchronous", default="FULL", help="SQLite synchronous setting (FULL, NORMAL)"
    )
    ap.add_argument("--collector-only", action="store_true", help="leave out the bare handler")
    ap.add_argument("--collector-config", default="", help="TOML added to the configuration")
    args = ap.parse_args()
    count = int(args.rate_guess * (args.seconds + args.warmup))
    modes = ("steady", "changing")
    bare = {mode: {} if args.collector_only else measure_bare(args, mode) for mode in modes}
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    proc, url, base = start_collector(tmp, args.synchronous, args.collector_config)
    vigil: dict[str, dict] = {}
    try:
        sessions = asyncio.run(enroll_agents(url, enrollment_token(base, args.agents), args.agents))
        port = int(url.rsplit(":", 1)[1])
        first = 1
        for mode in modes:
            reqs = build_requests(port, sessions, count, args.agents, args.cameras, mode, first)
            first += count // args.agents + 1
            vigil[mode] = asyncio.run(
                closed_loop(port, reqs, args.warmup, args.seconds, server=psutil.Process(proc.pid))
            )
            del reqs
        with urllib.request.urlopen(url + "/metrics") as r:
            metrics = r.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    counters = ("vigil_reports_received_total", "vigil_reports_cameras_unchanged_total")
    stored = [line for line in metrics.splitlines() if line.startswith(counters)]
    result: dict[str, object] = {
        "agents": args.agents,
        "sqlite_synchronous": args.synchronous,
        "cameras_per_report": args.cameras,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "stored": stored,
        "budget": {"reports_per_s": 2000, "p99_ms": 100, "steady_ratio": 0.5},
    }
    lines = []
    for mode in modes:
        body = len(report_body(0, 2, args.cameras, mode))
        ratio, line = summary(mode, vigil[mode], bare[mode], body)
        result[mode] = {"body_bytes": body, "bare_aiohttp": bare[mode], "vigil": vigil[mode]}
        result[mode]["ratio_to_bare"] = ratio  # type: ignore[index]
        lines.append(line)
    print(json.dumps(result, indent=2))
    print("\n" + "\n".join(lines) + f"\n({args.agents} agents, {args.cameras} cameras each)")


if __name__ == "__main__":
    main()

"""Figures for the collector's backup storage (not a test; prints what it measured).

    .venv/bin/python bench/store.py [--mib 256]
    .venv/bin/python bench/store.py --mib 1024 --staging-rounds 3 \
        [--before-bin /path/to/other/checkout/.venv/bin]

1. Local store: committing a staged upload by hard link vs by copy (fsync included).
2. Upload over the wire: a real collector process, signed 8 MiB chunks (HMAC per request,
   fsync per chunk), the complete step (SHA-256 check + store) and the collector's RSS.
3. S3 (moto on 127.0.0.1 in its own process): put_file of the same object with 16 MiB
   parts; peak RSS of the process doing the put, to show memory stays flat.

With ``--staging-rounds N`` only 2. runs, end to end (chunks + complete), N alternating
rounds of: ``[backup] staging = "disk"`` and ``"store"`` on the local store, and, with
``--before-bin``, the collector installed there (another checkout's code) as it is;
medians, with the load average before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024


def make_file(path: Path, mib: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(MIB)
    with open(path, "wb") as fh:
        for i in range(mib):
            b = block[:-8] + i.to_bytes(8, "big")
            h.update(b)
            fh.write(b)
    return h.hexdigest()


def bench_local(tmp: Path, src: Path, mib: int) -> None:
    from collector.backups.objectstore import LocalObjectStore

    store = LocalObjectStore(tmp / "objects")
    t = time.perf_counter()
    asyncio.run(store.put_file("s/linked.age", src))
    linked = time.perf_counter() - t
    real_link = os.link
    os.link = lambda *a, **k: (_ for _ in ()).throw(OSError(18, "EXDEV"))  # force the copy
    try:
        t = time.perf_counter()
        asyncio.run(store.put_file("s/copied.age", src))
        copied = time.perf_counter() - t
    finally:
        os.link = real_link
    print(
        f"local commit of {mib} MiB: hard link {linked * 1000:.1f} ms, "
        f"copy+fsync {copied * 1000:.0f} ms ({mib / copied:.0f} MiB/s)"
    )


def bench_wire(
    tmp: Path, src: Path, digest: str, mib: int, staging: str | None = None, quiet: bool = False
) -> tuple[float, float]:
    """Seconds to send the chunks and to complete, through a real collector process."""
    import shutil

    import psutil

    from harness.enrolled import enroll_agent
    from harness.processes import Collector
    from protocol import backup_envelope as be

    data_dir = tmp / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = tmp / "c.toml"
    more = f'staging = "{staging}"\n' if staging else ""
    cfg.write_text('[backup]\nmax_size = "8GiB"\n' + more)
    proc = Collector(data_dir, config=cfg)
    partner = proc.add_partner("bench")
    proc.start()
    try:
        agent = enroll_agent(proc.url, partner.token, "bench-host")
        size = src.stat().st_size
        header = be.BackupHeader(
            server_id=agent.server_id,
            seq=1,
            created_at=time.time(),
            ciphertext_sha256=digest,
            ciphertext_size=size,
        )
        env = be.encode(be.sign(header, agent.key))
        ps = psutil.Process(proc.proc.pid)  # type: ignore[union-attr]
        peak = [ps.memory_info().rss]

        async def go() -> tuple[float, float]:
            client = agent.client()
            r = await client.request("POST", "/api/v1/agent/backups", env)
            up = r.json()
            chunk = up["chunk_size"]
            t = time.perf_counter()
            with open(src, "rb") as fh:  # noqa: ASYNC230 - a benchmark, reads between awaits
                off = 0
                while off < size:
                    body = fh.read(chunk)
                    r = await client.request(
                        "PUT",
                        f"/api/v1/agent/backups/uploads/{up['upload_id']}",
                        body,
                        "application/octet-stream",
                        params={"offset": off},
                    )
                    assert r.status == 200, r.body
                    off = r.json()["offset"]
                    peak.append(ps.memory_info().rss)
            sent = time.perf_counter() - t
            t = time.perf_counter()
            r = await client.request(
                "POST", f"/api/v1/agent/backups/uploads/{up['upload_id']}/complete"
            )
            assert r.status == 201, r.body
            done = time.perf_counter() - t
            await client.close()
            return sent, done

        sent, done = asyncio.run(go())
        if quiet:
            return sent, done
        print(
            f"upload over the wire, {mib} MiB in {size // (8 * MIB) or 1} chunks of 8 MiB: "
            f"{mib / sent:.0f} MiB/s (HMAC + fsync per chunk); complete {done * 1000:.0f} ms; "
            f"collector RSS peak {max(peak) / MIB:.0f} MiB (start {peak[0] / MIB:.0f} MiB)"
        )
    finally:
        proc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return sent, done


def bench_staging(
    tmp: Path, src: Path, digest: str, mib: int, rounds: int, before_bin: Path | None
) -> None:
    """Where half-finished uploads wait, compared in one run (alternating rounds)."""
    import harness.processes

    ours = harness.processes.BIN
    variants: list[tuple[str, Path, str | None]] = []
    if before_bin is not None:
        variants.append((f"before ({before_bin})", before_bin, None))
    variants += [("disk staging (auto)", ours, "disk"), ("store staging", ours, "store")]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in variants}
    load = os.getloadavg()
    for _ in range(rounds):
        for name, bindir, staging in variants:
            harness.processes.BIN = bindir
            try:
                times[name].append(bench_wire(tmp, src, digest, mib, staging, quiet=True))
            finally:
                harness.processes.BIN = ours
    after = os.getloadavg()
    print(
        f"{mib} MiB upload end to end through a collector process, local store, "
        f"{rounds} alternating rounds (medians); load average {load[0]:.1f} before, "
        f"{after[0]:.1f} after, {os.cpu_count()} CPUs"
    )
    for name, values in times.items():
        total = sorted(s + d for s, d in values)[len(values) // 2]
        sent = sorted(s for s, _ in values)[len(values) // 2]
        done = sorted(d for _, d in values)[len(values) // 2]
        print(
            f"  {name}: {total:.1f} s ({mib / total:.0f} MiB/s); chunks {sent:.1f} s, "
            f"complete {done:.1f} s; all totals {', '.join(f'{s + d:.1f}' for s, d in values)}"
        )


_S3_PUT = r"""
import asyncio, resource, sys, time
from pathlib import Path
from collector.backups.objectstore import open_object_store
endpoint, bucket, src = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = open_object_store({"kind": "s3", "endpoint_url": endpoint, "bucket": bucket,
    "region": "us-east-1", "access_key_id": "x", "secret_access_key": "x",
    "addressing_style": "path", "multipart_chunksize": "16MiB"}, Path("."))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
asyncio.run(store.put_file("bench/obj.age", src))
took = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{took:.2f} {before / 1024:.0f} {after / 1024:.0f}")
"""

_MOTO = r"""
import sys, time
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print("%s:%s" % s.get_host_and_port(), flush=True)
time.sleep(3600)
"""


def bench_s3(src: Path, mib: int) -> None:
    import boto3

    moto = subprocess.Popen([sys.executable, "-c", _MOTO], stdout=subprocess.PIPE, text=True)
    try:
        assert moto.stdout is not None
        endpoint = "http://" + moto.stdout.readline().strip()
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        ).create_bucket(Bucket="vigil-bench")
        out = subprocess.run(
            [sys.executable, "-c", _S3_PUT, endpoint, "vigil-bench", str(src)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.split()
        took, before, after = float(out[0]), float(out[1]), float(out[2])
        print(
            f"S3 (moto) multipart put of {mib} MiB, 16 MiB parts x4 threads: {took:.1f} s; "
            f"putting process peak RSS {before:.0f} -> {after:.0f} MiB"
        )
    finally:
        moto.kill()
        moto.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--staging-rounds", type=int, default=0, help="only compare stagings")
    ap.add_argument("--before-bin", type=Path, help="bin directory of another installation")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "src.age"
        digest = make_file(src, args.mib)
        if args.staging_rounds:
            bench_staging(tmp, src, digest, args.mib, args.staging_rounds, args.before_bin)
            return
        bench_local(tmp, src, args.mib)
        bench_wire(tmp, src, digest, args.mib)
        bench_s3(src, args.mib)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(bench process max RSS {rss:.0f} MiB)")


if __name__ == "__main__":
    main()

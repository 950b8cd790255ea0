"""Figures for the collector's backup storage (not a test; prints what it measured).

    .venv/bin/python bench/store.py [--mib 256]

1. Local store: committing a staged upload by hard link vs by copy (fsync included).
2. Upload over the wire: a real collector process, signed 8 MiB chunks (HMAC per request,
   fsync per chunk), the complete step (SHA-256 check + store) and the collector's RSS.
3. S3 (moto on 127.0.0.1 in its own process): put_file of the same object with 16 MiB
   parts; peak RSS of the process doing the put, to show memory stays flat.
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


def bench_wire(tmp: Path, src: Path, digest: str, mib: int) -> None:
    import psutil

    from harness.enrolled import enroll_agent
    from harness.processes import Collector
    from protocol import backup_envelope as be

    data_dir = tmp / "data"
    cfg = tmp / "c.toml"
    cfg.write_text('[backup]\nmax_size = "8GiB"\n')
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
        print(
            f"upload over the wire, {mib} MiB in {size // (8 * MIB) or 1} chunks of 8 MiB: "
            f"{mib / sent:.0f} MiB/s (HMAC + fsync per chunk); complete {done * 1000:.0f} ms; "
            f"collector RSS peak {max(peak) / MIB:.0f} MiB (start {peak[0] / MIB:.0f} MiB)"
        )
    finally:
        proc.stop()


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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "src.age"
        digest = make_file(src, args.mib)
        bench_local(tmp, src, args.mib)
        bench_wire(tmp, src, digest, args.mib)
        bench_s3(src, args.mib)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(bench process max RSS {rss:.0f} MiB)")


if __name__ == "__main__":
    main()

"""The backup reader alone (``recovery.extract.read_archive``): time, CPU and peak memory
of a verify or a restore of N small files, read from a local file (no collector, no HTTP).

    .venv/bin/python bench/reader.py --files 200000 --mode verify
    .venv/bin/python bench/reader.py --files 50000 --mode restore --trace
    .venv/bin/python bench/reader.py --files 2000 --export-mib 600 --threads 3

The archive is made once by the agent's writer under ``--work`` (kept between runs, one
per file count: files of 100-2,000 random bytes, 350 directories) and each run is a fresh
process. ``--trace`` takes a ``tracemalloc`` snapshot when the manifest is reached (where
what is kept per member is at its largest) and prints the biggest holders by line: slow,
for finding where memory goes, not for timings. ``--threads`` is ``vigil-backup``'s.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import resource
import shutil
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.backup.archive import write_archive
from agent.backup.config import parse_backup_config
from agent.backup.sources import collect_sources
from protocol.backup_archive import generate_identity, parse_identity
from recovery import extract


def make_archive(work: Path, files: int, export_mib: int) -> tuple[Path, str, str]:
    name = f"archive-{files}" + (f"-{export_mib}mib" if export_mib else "")
    archive, key = work / f"{name}.age", work / f"{name}.key"
    if not archive.exists():
        tree = work / f"tree-{files}"
        rng = random.Random(1)
        for i in range(files):
            d = tree / "etc" / "vms" / f"site-{i % 50:02d}" / f"cameras-{i % 7}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"camera-{i:06d}.xml").write_bytes(os.urandom(rng.randint(100, 2000)))
        if export_mib:  # as bench/backup.py's: half random, half text, all unique
            with open(tree / "export.sql", "wb") as f:
                for _ in range(export_mib):
                    f.write(os.urandom(512 * 1024) + base64.b64encode(os.urandom(384 * 1024)))
        identity, recipient = generate_identity()
        entries, _ = collect_sources(parse_backup_config({"paths": [str(tree)]}))
        with open(archive, "wb") as out:
            write_archive(entries, out, [recipient], server_id="bench", threads=2)
        key.write_text(f"{identity}\n{recipient}\n")
        shutil.rmtree(tree)
    identity, recipient = key.read_text().split()
    return archive, identity, recipient


def _snapshot_at_the_manifest(snaps: list) -> None:
    """A snapshot when the manifest is reached: the reader's own hook, or the older
    reader's (``_check_manifest``, run after the whole archive was read), so that the
    same command measures a checkout from before."""
    walk = getattr(extract, "_Walk", None)
    owner, name = (walk, "_check_manifest") if walk else (extract, "_check_manifest")
    check = getattr(owner, name)

    def traced(*args):  # type: ignore[no-untyped-def]
        snaps.append(tracemalloc.take_snapshot())
        return check(*args)

    setattr(owner, name, traced)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=50000)
    p.add_argument("--mode", choices=["verify", "restore"], default="verify")
    p.add_argument("--export-mib", type=int, default=0, help="one large file as well")
    p.add_argument("--work", default="/tmp/vigil-bench-reader")
    p.add_argument("--threads", type=int, help="default: the reader's own for the mode")
    p.add_argument("--trace", action="store_true")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    archive, identity, recipient = make_archive(work, a.files, a.export_mib)
    dest = None
    if a.mode == "restore":
        dest = work / "restored"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
    snaps = []
    if a.trace:
        tracemalloc.start(8)
        _snapshot_at_the_manifest(snaps)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    # the reader's default for the mode; a checkout from before had one for both (THREADS)
    if hasattr(extract, "default_threads"):
        a.threads = a.threads or extract.default_threads(dest is not None)
    else:
        a.threads = a.threads or getattr(extract, "THREADS", 2)
    with open(archive, "rb") as f:
        threaded = hasattr(extract, "default_threads") or hasattr(extract, "THREADS")
        kw = {"threads": a.threads} if threaded else {}
        r = extract.read_archive(
            f, [parse_identity(identity)], recipients=[recipient], dest=dest, **kw
        )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    files = getattr(r, "files", None) or sum(e.type == "file" for e in r.manifest.entries)
    print(
        f"{a.mode} of {files} files ({a.threads} threads): {wall:.2f} s, cpu {cpu:.2f} s, "
        f"peak RSS {after.ru_maxrss / 1024:.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )
    if snaps:
        print(f"tracemalloc peak {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB")
        for s in snaps[0].statistics("lineno")[:8]:
            print(f"  {s.size / 2**20:7.1f} MiB {s.count:8d} blocks  {s.traceback[0]}")
    if dest is not None:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()

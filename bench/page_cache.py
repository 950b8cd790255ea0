"""What writing a large file costs, kept in the page cache, dropped behind the writer, or
written around it (not a test; prints what it measured).

    .venv/bin/python bench/page_cache.py [--mib 256] [--rounds 3] [--pause 6]

Each round writes ``--mib`` MiB of new data in 8 MiB pieces to a fresh file in a
temporary directory, three times: once left in the page cache (what a plain ``write``
does), once with ``collector.backups.staging.drop_behind`` after every piece (what the
collector's staging does), once through the agent's
``ArchiveFile`` (``O_DIRECT`` from a page-aligned buffer, on its own thread: the agent's
archive file). It prints the system and user CPU time (all threads) and the wall time of
each, and the load average.
The pause before each write lets the kernel hand the pages freed by the previous one
back (a virtual machine's free page reporting): without it, the second writer reuses
the first one's pages and pays nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PIECE = 8 << 20


def write(path: Path, mib: int, how: str) -> tuple[float, float, float]:
    """(system CPU, user CPU, wall) seconds of writing ``mib`` MiB to a new ``path``."""
    from agent.backup.archive_file import ArchiveFile
    from collector.backups.staging import drop_behind

    piece = bytearray(os.urandom(PIECE))
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if how == "direct":
        with ArchiveFile(path) as out:
            for i in range(mib * (1 << 20) // PIECE):
                out.write_chunk(i * PIECE, piece)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for i in range(mib * (1 << 20) // PIECE):
                os.pwrite(fd, piece, i * PIECE)
                if how == "dropped":
                    drop_behind(fd, i * PIECE, (i + 1) * PIECE)
        finally:
            os.close(fd)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    path.unlink()
    return r1.ru_stime - r0.ru_stime, r1.ru_utime - r0.ru_utime, t1 - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pause", type=float, default=6.0, help="seconds before each write")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    figures: dict[str, list[tuple[float, float, float]]] = {"kept": [], "dropped": [], "direct": []}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-pages-") as tmp:
        for rnd in range(args.rounds):
            for name in figures:
                time.sleep(args.pause)
                sys_s, user_s, wall = write(Path(tmp) / "f", args.mib, name)
                figures[name].append((sys_s, user_s, wall))
                print(
                    f"round {rnd + 1} {name:7}: {args.mib} MiB, system cpu {sys_s:.2f} s, "
                    f"user {user_s:.2f} s, wall {wall:.2f} s",
                    flush=True,
                )
    for name, rows in figures.items():
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        print(
            f"median {name:7}: system cpu {med[0]:.2f} s, user {med[1]:.2f} s, "
            f"wall {med[2]:.2f} s ({args.mib / med[0] if med[0] else 0:.0f} MiB per system cpu s)"
        )
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

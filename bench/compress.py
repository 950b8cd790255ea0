"""What the archive's zstd stage costs, with and without zstd's content checksum (not a
test; prints what it measured).

    .venv/bin/python bench/compress.py [--mib 256] [--rounds 3]

The data is the shape of ``bench/backup.py``'s export: half random (already-compressed
blobs), half base64 text. It is compressed at the agent's level in the agent's 256 KiB
blocks, the CPU time of each way taken in turns, and the medians printed.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def compress(data: bytes, checksum: bool) -> tuple[float, int]:
    """(CPU seconds, compressed size) of one pass over ``data``."""
    import zstandard

    from agent.backup.archive import ZSTD_LEVEL, _TarStream

    cobj = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=checksum).compressobj()
    block = _TarStream.COALESCE
    view = memoryview(data)
    size = 0
    t0 = time.process_time()
    for at in range(0, len(data), block):
        size += len(cobj.compress(view[at : at + block]))
    size += len(cobj.flush())
    return time.process_time() - t0, size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    parts = []
    for _ in range(args.mib):
        parts += [os.urandom(512 << 10), base64.b64encode(os.urandom(384 << 10))]
    data = b"".join(parts)[: args.mib << 20]
    cpu: dict[bool, list[float]] = {True: [], False: []}
    sizes: dict[bool, int] = {}
    for _ in range(args.rounds):
        for checksum in (True, False):
            seconds, sizes[checksum] = compress(data, checksum)
            cpu[checksum].append(seconds)
    for checksum in (True, False):
        med = statistics.median(cpu[checksum])
        print(
            f"checksum {'on ' if checksum else 'off'}: median {med:.3f} s of CPU for "
            f"{args.mib} MiB ({med * 1024 / args.mib:.3f} s a GiB), "
            f"size {sizes[checksum] / len(data):.3f} of the input"
        )
    on, off = statistics.median(cpu[True]), statistics.median(cpu[False])
    print(f"the checksum's share of the stage: {(on - off) / on:.1%}")
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Make ``archive.age`` and ``expected.json`` in this folder with an archive writer of the
past, so that a test can hold today's reader to archives written before.

    git archive eb027c0 | tar -x -C /tmp/vigil-eb027c0
    PYTHONPATH=/tmp/vigil-eb027c0 .venv/bin/python tests/backups/old_archive/make.py

Commit ``eb027c0`` is the first archive writer: fractional mtimes in PAX headers for
every member, the manifest built in memory, no ``[backup] threads``. The tree is built
under ``/tmp/vigil-old-archive-tree`` with names that need PAX records (long, non-ASCII),
a symlink, an empty file, a file of several read blocks and age chunks, and odd modes;
``expected.json`` records what a restore must give back. ``key.txt`` is the test-only
age identity the archive is encrypted to.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = Path("/tmp/vigil-old-archive-tree")
CREATED_AT = 1_764_000_000.25


def build_tree(root: Path) -> None:
    rng = random.Random(7)
    shutil.rmtree(root, ignore_errors=True)
    (root / "etc" / "vms" / "site-é").mkdir(parents=True)
    (root / "etc" / "vms" / "cameras.xml").write_bytes(b"<cameras>\n" + b"<cam/>\n" * 300)
    (root / "etc" / "vms" / "empty.conf").write_bytes(b"")
    big = rng.randbytes(150_000) + rng.randbytes(4096) * 80  # 3 age chunks, compressible
    (root / "etc" / "vms" / "site-é" / "große-datei.bin").write_bytes(big)
    long_dir = root / "etc" / "vms" / ("d" * 90)
    long_dir.mkdir()
    (long_dir / ("f" * 60 + ".conf")).write_bytes(b"long name\n")
    secret = root / "etc" / "vms" / "secret.key"
    secret.write_bytes(b"not really\n")
    secret.chmod(0o600)
    (root / "etc" / "vms" / "current").symlink_to("site-é")
    for n, p in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(
            p,
            ns=(1_700_000_000_123_456_789 + n, 1_700_000_000_123_456_789 + n),
            follow_symlinks=False,
        )


def snapshot(root: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ["symlink", 0o777, st.st_mtime_ns, os.readlink(p)]
        elif p.is_dir():
            out[rel] = ["dir", st.st_mode & 0o7777, st.st_mtime_ns, None]
        else:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[rel] = ["file", st.st_mode & 0o7777, st.st_mtime_ns, digest]
    return out


def main() -> None:
    from agent.backup.archive import write_archive
    from agent.backup.config import parse_backup_config
    from agent.backup.sources import collect_sources
    from protocol.backup_archive import generate_identity

    secret, recipient = generate_identity()
    (HERE / "key.txt").write_text(secret + "\n")
    build_tree(TREE)
    entries, _ = collect_sources(parse_backup_config({"paths": [str(TREE)]}))
    out = io.BytesIO()
    result = write_archive(entries, out, [recipient], server_id="old-server", created_at=CREATED_AT)
    (HERE / "archive.age").write_bytes(out.getvalue())
    expected = {
        "written_by": "eb027c0",
        "tree": str(TREE),
        "recipient": recipient,
        "ciphertext_sha256": result.sha256,
        "content_digest": result.content_digest,
        "plaintext_size": result.plaintext_size,
        "entries": snapshot(TREE),
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(TREE)


if __name__ == "__main__":
    main()

"""The docs stay true to the code: every test a doc names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_threat_model_names_only_tests_that_exist() -> None:
    text = (ROOT / "docs" / "threat-model.md").read_text()
    missing: list[str] = []
    current: Path | None = None
    named = 0
    for m in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", text):
        path, test, same_file_test = m.groups()
        if path:
            current = ROOT / path
            if not current.exists():
                missing.append(path)
                continue
        name = test or same_file_test
        if name:
            assert current is not None
            named += 1
            if not re.search(rf"^(async )?def {name}\(", current.read_text(), re.M):
                missing.append(f"{current.relative_to(ROOT)}::{name}")
    assert named > 20
    assert not missing, missing


def test_the_per_report_cost_bench_runs() -> None:
    """``bench/codec.py``, named in docs/benchmarks.md, runs to its last row (it once
    stopped with a TypeError when a helper it shares with bench/ingest.py changed)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "codec.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for row in ("msgspec decode + validate", "camera digest", "Ed25519 verify", "HMAC-SHA256"):
        assert row in done.stdout, done.stdout


def test_the_write_and_compression_benches_run() -> None:
    """``bench/page_cache.py`` and ``bench/compress.py``, named in docs/benchmarks.md and
    docs/decisions, run to their last row on a small input (they import the agent's
    ``ArchiveFile`` and ``_TarStream``, which can change under them)."""
    for args, rows in (
        (["page_cache.py", "--mib", "16", "--rounds", "1", "--pause", "0"], ("median direct",)),
        (["compress.py", "--mib", "8", "--rounds", "1"], ("checksum on", "checksum off")),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        for row in rows:
            assert row in done.stdout, done.stdout

"""The backup protocol's typed messages keep the bytes the plain dicts had, and the route
paths are spelled once, in ``protocol.routes``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import msgspec

from protocol import routes
from protocol.backup_messages import (
    BackupRun,
    BackupStored,
    ChunkAccepted,
    RunRecorded,
    UnchangedStored,
    UploadOpened,
    UploadState,
    reply_body,
)

ROOT = Path(__file__).resolve().parents[2]


def test_replies_are_the_dicts_the_collector_always_sent() -> None:
    # json.dumps of the body is what aiohttp's json_response writes: same keys, same order,
    # zeros and None kept.
    cases = [
        (
            # chunk_body_bound was added later (older agents ignore a field they do not know)
            UploadOpened(upload_id="u1", offset=0, chunk_size=65536),
            {"upload_id": "u1", "offset": 0, "chunk_size": 65536, "chunk_body_bound": False},
        ),
        (
            UnchangedStored(backup_id="b1", seq=7),
            {"backup_id": "b1", "status": "unchanged", "seq": 7},
        ),
        (ChunkAccepted(offset=0), {"offset": 0}),
        (UploadState(offset=5, size=0), {"offset": 5, "size": 0}),
        (BackupStored(backup_id="b2", seq=3), {"backup_id": "b2", "seq": 3}),
        (RunRecorded(id="r1"), {"id": "r1"}),
    ]
    for reply, old in cases:
        assert json.dumps(reply_body(reply)) == json.dumps(old)


def test_run_record_bytes_are_the_agents_old_ones() -> None:
    short = BackupRun(outcome="failed", reason="", started_at=1.0, finished_at=2.0)
    assert msgspec.json.encode(short) == b'{"outcome":"failed","started_at":1.0,"finished_at":2.0}'
    full = BackupRun(
        outcome="ok",
        reason="r",
        started_at=1.0,
        finished_at=2.0,
        seq=4,
        backup_id="b",
        files=3,
        bytes=10,
    )
    assert msgspec.json.encode(full) == (
        b'{"outcome":"ok","reason":"r","started_at":1.0,"finished_at":2.0,'
        b'"seq":4,"backup_id":"b","files":3,"bytes":10}'
    )


def test_agent_reads_replies_leniently_where_it_did() -> None:
    # An older collector may leave out chunk_size and offset; the agent assumed 0 for both.
    opened = msgspec.convert({"upload_id": "u"}, UploadOpened, strict=False)
    assert (opened.offset, opened.chunk_size) == (0, 0)
    assert msgspec.convert({}, BackupStored).backup_id is None


def _path_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and "/api/v1/" in node.value:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_agent_and_recovery_spell_no_route_path() -> None:
    found = [
        hit
        for package in ("agent", "recovery")
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in _path_literals(path)
    ]
    assert found == []


def test_route_patterns_fill_in() -> None:
    assert routes.BACKUP_UPLOAD.format(upload_id="x") == "/api/v1/agent/backups/uploads/x"
    assert routes.BACKUP_UPLOAD_COMPLETE.format(upload_id="x").endswith("/uploads/x/complete")
    assert routes.ENROLL.startswith(routes.AGENT_PREFIX)

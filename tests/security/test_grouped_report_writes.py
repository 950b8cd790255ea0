"""Report batches queued for one commit are written together (one insert takes every
nonce, one more every report row), and replay protection stays as strong: of two
batches with one nonce only the first is stored, a nonce another collector process
took is a replay, and a batch that fails is refused alone while the others are stored.

The collector runs in this process (``harness.app``) so a test can reach its database.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec

from collector.health.ingest import Batch, ReportWrites, prepare
from collector.http.appkeys import DB
from collector.http.replay import NonceGroup, Replayed, take
from harness.app import app_client
from harness.database import collector_database, collector_sql
from harness.enrolled import enroll_agent
from harness.processes import Collector
from harness.signed import batch, report
from protocol.messages import ReportBatch
from tests.faults.test_resilience import stored_reports


class FailingFor(ReportWrites):
    """The report writes, failing (as a storage error would) for the batch of server
    ``boom``: whatever else is written with it in the group is rolled back too."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, conn: Any, items: list[Batch]) -> list[tuple[bool, Any]]:
        self.calls.append([b.reports[0].report_id for b in items])
        stored = super().run(conn, items)
        if any(b.server_id == "boom" for b in items):
            raise RuntimeError("the batch of server boom fails")
        return stored


def prepared(seq: int, report_id: str) -> list[Any]:
    decoded = msgspec.json.decode(batch(report(seq, report_id)), type=ReportBatch)
    return [prepare(r, "", None) for r in decoded.reports]


def test_batches_of_one_commit_keep_replay_protection_and_fail_alone(tmp_path: Path) -> None:
    offline = Collector(tmp_path / "data")
    _, token = offline.partner("acme")

    async def go() -> tuple[str, list[Any], int]:
        async with app_client(offline.data_dir) as client:
            url = str(client.make_url("")).rstrip("/")
            server_id = (await asyncio.to_thread(enroll_agent, url, token)).server_id
            db = client.app[DB]
            writes = FailingFor()
            group = NonceGroup(writes)
            other_process = collector_database(offline.data_dir / "vigil.db")
            try:
                other_process.write_sync(lambda c: take(c, "taken-elsewhere", time.time()))
            finally:
                other_process.close()
            now = time.time()
            items = [
                ("n-1", Batch(server_id, prepared(1, "first"), now)),
                ("n-1", Batch(server_id, prepared(2, "same-nonce"), now)),
                ("taken-elsewhere", Batch(server_id, prepared(3, "replayed"), now)),
                ("n-2", Batch("boom", prepared(4, "fails"), now)),
                ("n-3", Batch(server_id, prepared(5, "second"), now)),
            ]
            outcomes = await asyncio.gather(
                *(db.write_grouped(group, item) for item in items), return_exceptions=True
            )
            return server_id, list(outcomes), writes.calls

    server_id, outcomes, calls = asyncio.run(go())
    # The batches whose nonce was new, together; that failed, so each again on its own.
    assert calls == [["first", "fails", "second"], ["first"], ["fails"], ["second"]], calls
    assert outcomes[0][:2] == (["first"], [])
    assert isinstance(outcomes[1], Replayed)
    assert isinstance(outcomes[2], Replayed)
    assert isinstance(outcomes[3], RuntimeError), outcomes[3]
    assert outcomes[4][:2] == (["second"], [])
    assert stored_reports(offline, server_id) == [(1, "first"), (5, "second")]
    assert stored_reports(offline, "boom") == []
    # The failed batch kept nothing, its nonce included.
    with collector_sql(offline.data_dir, offline.env) as conn:
        nonces = {r[0] for r in conn.execute("SELECT nonce FROM request_nonces").fetchall()}
    assert "n-2" not in nonces and {"n-1", "n-3", "taken-elsewhere"} <= nonces

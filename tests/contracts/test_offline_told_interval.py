"""Offline is judged against the report interval the server was last told, with one new
interval of grace after the told interval changed."""

from __future__ import annotations

import time
from pathlib import Path

from collector.health import servers
from collector.health.fleet import FleetView
from collector.storage import Database
from harness.database import collector_database
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for


def test_the_told_interval_is_stored_with_each_report(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    _, ack = post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    told = ack["settings"]["report_interval_s"]
    collector.cli("server", "interval", "--server", server_id, "5s")
    view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    # The new setting is not yet heard of: judged against what the server was told.
    assert (view["report_interval_s"], view["told_interval_s"]) == (5, told)
    assert view["status"] != "offline"
    deadline = time.monotonic() + 30  # the settings are cached a few seconds per server
    seq = 2
    while view["told_interval_s"] != 5 and time.monotonic() < deadline:
        post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(seq)))
        view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
        seq += 1
        time.sleep(0.5)
    assert view["told_interval_s"] == 5


def _view(db: Database, server_id: str, now: float) -> dict:
    def go(c):
        row = servers.get(c, server_id)
        return FleetView(c, 60, 3).view(row, now)

    return db.read_sync(go)


def test_offline_uses_the_told_interval_and_a_grace_after_a_change(tmp_path: Path) -> None:
    db = collector_database(tmp_path / "vigil.db", synchronous="NORMAL")
    seen = 1_800_000_000.0

    def setup(c):
        c.execute("INSERT INTO partners (name, created_at) VALUES ('acme', 0)")
        c.execute(
            "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, enrolled_at, "
            "last_seen, state, report_interval_s, told_interval_s, told_grace_s) "
            "VALUES ('s1', 1, 'h', 'm', ?, 0, ?, '{}', 60, 3600, 0)",
            (b"\x00", seen),
        )

    db.write_sync(setup)
    try:
        # Set to 60 s after its last report, which told it 3600 s: 10 minutes of silence
        # are normal for it (3 x 3600 s allowed), though 3 x 60 s have passed.
        assert _view(db, "s1", seen + 600)["status"] != "offline"
        assert _view(db, "s1", seen + 3 * 3600 + 1)["status"] == "offline"
        # Its last report told it 60 s (changed from 3600 s): 3 x 60 s plus one new
        # interval of grace until its next report.
        db.write_sync(
            lambda c: c.execute("UPDATE servers SET told_interval_s = 60, told_grace_s = 60")
        )
        assert _view(db, "s1", seen + 230)["status"] != "offline"
        assert _view(db, "s1", seen + 241)["status"] == "offline"
    finally:
        db.close()

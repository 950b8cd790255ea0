"""A premium-24x7 server through February over real sockets, with the clock under the
test's control: enrollment, stored backups and the findings are dated by the test (written
to the collector's database, then judged through the API at chosen instants), and the
monthly report is compared with figures computed by hand below."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from harness.database import collector_sql
from harness.net import http
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def call(collector: Collector, key: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    status, _, out = http(method, collector.url + path, data, headers)
    assert status in (200, 201), out
    return json.loads(out)


def kinds_at(collector: Collector, key: str, server_id: str, when: str) -> set[str]:
    body = call(collector, key, "GET", f"/api/v1/contract-findings?at={when.replace('+', '%2B')}")
    return {f["kind"] for f in body["findings"] if f["server_id"] == server_id}


def test_premium_server_through_february(collector: Collector, make_agent: Any) -> None:
    key, token = collector.partner("acme")
    call(
        collector,
        key,
        "PUT",
        "/api/v1/contracts/P-1",
        {
            "customer": "Airport",
            "plan": "premium-24x7",
            "licence_ids": ["LP"],
            "start": "2026-01-01",
        },
    )
    agent = make_agent(extra_config='licence_id = "LP"\n')
    sid = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    _, ack = post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    # The policy the agent receives: premium's every 6 h, not the default 24 h.
    assert ack["settings"]["backup_interval_s"] == 6 * 3600

    # Enrolled Tue 10 Feb 10:00 CET; backups stored every 6 h from 13:00 that day up to
    # 1 Mar, except the six from Fri 20 Feb 01:00 to Sat 21 Feb 07:00.
    enrolled = ts("2026-02-10T10:00+01:00")
    gap = (ts("2026-02-20T01:00+01:00"), ts("2026-02-21T07:00+01:00"))
    stored, t = [], ts("2026-02-10T13:00+01:00")
    while t < ts("2026-03-01T00:00+01:00"):
        if not gap[0] <= t <= gap[1]:
            stored.append(t)
        t += 6 * 3600
    with collector_sql(collector.data_dir, collector.env) as db:
        db.execute("UPDATE servers SET enrolled_at = ? WHERE id = ?", (enrolled, sid))
        db.executemany(
            "INSERT INTO backup_stored_times (server_id, seq, stored_at) VALUES (?, ?, ?)",
            [(sid, i + 1, at) for i, at in enumerate(stored)],
        )

    # One hour after enrollment the server is new: nothing owed yet, although the
    # contract started on 1 January.
    backup_kinds = {"backup_overdue", "backup_compliance_low"}
    assert not kinds_at(collector, key, sid, "2026-02-10T11:00+01:00") & backup_kinds
    # Fri 20 Feb 12:00: last backup Thu 19:00, due by 19:00 + 6 h + 2 h = Fri 03:00.
    assert "backup_overdue" in kinds_at(collector, key, sid, "2026-02-20T12:00+01:00")
    # Sat 21 Feb 14:00: the 13:00 backup is stored again.
    assert "backup_overdue" not in kinds_at(collector, key, sid, "2026-02-21T14:00+01:00")

    # A P1 on Saturday 14 Feb 03:00: 1 h response (24x7), acknowledged 03:40; workaround
    # at 05:00 ends the continuous effort.
    inc = call(
        collector,
        key,
        "POST",
        "/api/v1/incidents",
        {
            "contract_id": "P-1",
            "priority": "P1",
            "server_id": sid,
            "title": "recording stopped",
            "opened_at": "2026-02-14T03:00+01:00",
        },
    )
    iid = inc["id"]
    call(
        collector,
        key,
        "POST",
        f"/api/v1/incidents/{iid}/acknowledge",
        {"at": "2026-02-14T03:40+01:00"},
    )
    shown = call(
        collector,
        key,
        "POST",
        f"/api/v1/incidents/{iid}/workaround",
        {"at": "2026-02-14T05:00+01:00", "note": "recorder failover"},
    )
    assert shown["state"] == "workaround"
    assert shown["response"]["status"] == "met" and shown["response"]["due"].startswith(
        "2026-02-14T04:00"
    )
    assert shown["resolution"]["status"] == "met"

    (row,) = call(collector, key, "GET", "/api/v1/reports/monthly?month=2026-02&by=customer")[
        "rows"
    ]
    (server,) = row["server_details"]
    # Counted from 10 Feb: 19 days. Slots of 6 h from 10 Feb 10:00 whose end + 2 h falls
    # by 1 Mar 00:00: starts 10 Feb 10:00 ... 28 Feb 16:00 = 438 h / 6 + 1 = 74. Missed:
    # the six whose [start, start + 8 h) holds no backup (19 Feb 22:00, 20 Feb 04:00,
    # 10:00, 16:00, 22:00, 21 Feb 04:00) -> 68 met.
    assert (server["counted_from"], server["days_active"]) == ("2026-02-10", 19)
    assert (server["backup_slots_met"], server["backup_slots_total"]) == (68, 74)
    (incident,) = row["incident_details"]
    assert incident["response"]["kept"] is True and incident["resolution"]["kept"] is True
    assert (row["response_met"], row["response_total"]) == (1, 1)

"""A finding that clears moves its incident to resolved, awaiting the customer's
acceptance; follow-up contacts and workarounds through the API."""

from __future__ import annotations

import time
from pathlib import Path

from harness.net import http
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for


def test_camera_back_up_resolves_its_incident_awaiting_acceptance(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    today = time.strftime("%Y-%m-%d")
    f = tmp_path / "c.csv"
    f.write_text(
        "contract_id,customer,partner,plan,licence_ids,start\n"
        f"M-1,Museum,acme,maintenance-support,LIC-M,{today}\n"
    )
    collector.cli("contracts", "import", str(f))
    agent = make_agent(extra_config='licence_id = "LIC-M"\n')
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    up = {"key": "cam-1", "address": "10.0.0.7", "verdict": "ok"}
    down = {**up, "verdict": "unreachable", "reasons": ["no answer on port 80"]}
    for seq, cam in ((1, up), (2, down)):
        post_signed(
            collector.url, session, "/api/v1/agent/reports", batch(report(seq, cameras=[cam]))
        )
    (inc,) = collector.api(key, "/api/v1/incidents")[1]["incidents"]
    assert inc["state"] == "open" and inc["server_id"] == server_id
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(3, cameras=[up])))
    shown = collector.api(key, f"/api/v1/incidents/{inc['id']}")[1]
    assert shown["state"] == "resolved" and shown["awaiting_acceptance"] is True
    assert shown["events"][-1]["action"] == "clear" and shown["events"][-1]["by"] == "collector"

    def act(action: str, body: bytes) -> tuple[int, dict]:
        import json

        status, _, out = http(
            "POST",
            f"{collector.url}/api/v1/incidents/{inc['id']}/{action}",
            body,
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        return status, json.loads(out)

    # A follow-up contact is tracked with its due time (medium: 2 working days).
    status, body = act("contact", b'{"by": "customer", "note": "camera flickers"}')
    assert status == 200 and body["followups"][0]["target"] == "2 working days"
    assert body["followups"][0]["due"] is not None
    status, body = act("accept", b'{"by": "customer"}')
    assert status == 200 and body["state"] == "closed"


def test_a_check_run_clears_the_incidents_of_findings_it_no_longer_finds() -> None:
    import datetime as dt

    from collector.contracts import repository as repo
    from collector.contracts.checks import ServerFacts
    from collector.contracts.service import CheckInputs, compute
    from collector.contracts.terms import Contract

    now = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC).timestamp()
    c = Contract("M-1", "Museum", "acme", "maintenance-support", ("L1",), start=dt.date(2026, 1, 1))
    s = ServerFacts("s1", "L1", enrolled_at=now - 3600, last_seen=now - 10, uses_monitoring=True)
    inputs = CheckInputs(
        now=now,
        fleet=repo.Fleet([s], {"s1": "acme"}, {}),
        contracts={("acme", "M-1"): c},
        releases={},
        cases={},
        open_keys={"s1:silent", "s1:camera_offline", "s1:backup_overdue"},
        priority_maps={},
    )
    # Reporting again and nothing overdue yet: the silent and backup incidents clear; the
    # camera incident is ingest's to clear.
    assert compute(inputs).cleared_keys == ["s1:backup_overdue", "s1:silent"]

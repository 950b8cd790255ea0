"""One coverage state everywhere: a warranty without an installation date is active from
the enrollment of its server in the fleet view, the contract list, the checks and the
entitlement alike."""

from __future__ import annotations

import json
from pathlib import Path

from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for


def test_warranty_without_installation_date_has_one_state(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    f = tmp_path / "w.csv"
    f.write_text(
        "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"
        "W-1,Bakery,acme,warranty,LIC-W,,\n"
    )
    collector.cli("contracts", "import", str(f))
    # Before any server runs the licence nothing says when it was installed: pending.
    assert collector.api(key, "/api/v1/contracts")[1]["contracts"][0]["coverage"] == "pending"
    agent = make_agent(extra_config='licence_id = "LIC-W"\n')
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    assert post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))[0] == 200
    (listed,) = collector.api(key, "/api/v1/contracts")[1]["contracts"]
    assert listed["coverage"] == "active"
    assert collector.api(key, "/api/v1/contracts/W-1")[1]["contract"]["coverage"] == "active"
    servers = collector.api(key, "/api/v1/servers")[1]
    rows = servers["servers"] if isinstance(servers, dict) else servers
    (row,) = [s for s in rows if s["id"] == server_id]
    assert row["contract"]["coverage"] == "active"
    shown = json.loads(collector.cli("contracts", "list", "--json"))["contracts"][0]
    assert shown["coverage"] == "active"
    findings = json.loads(collector.cli("check", "--json", "--no-incidents"))
    items = findings["findings"] if isinstance(findings, dict) else findings
    assert "coverage_pending" not in {f["kind"] for f in items}

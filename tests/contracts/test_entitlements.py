"""The contract decides what is offered: heartbeat only without health monitoring,
plain words for the installer, incidents from health findings."""

from __future__ import annotations

import time
from pathlib import Path

from harness.net import wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for


def contract_file(tmp_path: Path, plan: str, licence: str, partner: str = "acme") -> Path:
    today = time.strftime("%Y-%m-%d")
    p = tmp_path / f"{plan}.csv"
    p.write_text(
        "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"
        f"C-{plan},Museum,{partner},{plan},{licence},{today},{today}\n"
    )
    return p


def test_warranty_server_gets_a_heartbeat_only_and_is_told_why(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    collector.cli("contracts", "import", str(contract_file(tmp_path, "warranty", "LIC-W")))
    agent = make_agent(extra_config='licence_id = "LIC-W"\n')
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    status, ack = post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(1)))
    assert status == 200
    assert ack["settings"]["monitoring_entitled"] is False
    assert ack["settings"]["backup_entitled"] is False
    assert "Health monitoring is not offered" in ack["settings"]["notice"]
    view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    assert view["status"] == "unmonitored" and view["last_seen"] is not None
    assert view["volumes"] == [], "no health data kept without the entitlement"
    agent.start()
    wait_until(lambda: (agent.polled_status().get("settings") or {}).get("notice"), 30)
    assert "not offered" in agent.cmd("status").stdout


def test_maintenance_server_is_monitored_and_a_camera_down_opens_an_incident(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    collector.cli(
        "contracts", "import", str(contract_file(tmp_path, "maintenance-support", "LIC-M"))
    )
    agent = make_agent(extra_config='licence_id = "LIC-M"\n')
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    cam = {"key": "cam-1", "address": "10.0.0.7", "verdict": "ok"}
    status, ack = post_signed(
        collector.url, session, "/api/v1/agent/reports", batch(report(1, cameras=[cam]))
    )
    assert status == 200 and ack["settings"]["monitoring_entitled"] is True
    assert collector.api(key, f"/api/v1/servers/{server_id}")[1]["status"] == "ok"
    down = {**cam, "verdict": "unreachable", "reasons": ["no answer on port 80"]}
    post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(2, cameras=[down])))
    incidents = collector.api(key, "/api/v1/incidents")[1]
    items = incidents["incidents"] if isinstance(incidents, dict) else incidents
    mine = [i for i in items if i.get("server_id") == server_id]
    assert len(mine) == 1
    assert mine[0]["priority"] == "medium" and "cam-1" in mine[0]["title"]
    assert mine[0]["response"]["target"] == "8 business hours" and mine[0]["response"]["due"]
    full_soon = [
        {
            "mountpoint": "/video",
            "total": 1000,
            "used": 990,
            "free": 10,
            "recording": True,
            "full_at": time.time() + 6 * 3600,
        }
    ]
    for seq in (3, 4):  # the second report finds the incident open: no second one
        post_signed(
            collector.url,
            session,
            "/api/v1/agent/reports",
            batch(report(seq, cameras=[down], volumes=full_soon)),
        )
    items = collector.api(key, "/api/v1/incidents")[1]["incidents"]
    volume = [i for i in items if i["source"] == "finding:volume_full_48h"]
    assert len(volume) == 1 and volume[0]["priority"] == "high"
    assert "/video" in volume[0]["title"]
    events = collector.api(key, f"/api/v1/servers/{server_id}/camera-events")[1]["events"]
    assert [(e["from"], e["to"]) for e in events] == [("ok", "unreachable"), (None, "ok")]

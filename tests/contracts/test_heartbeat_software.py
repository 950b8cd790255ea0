"""Heartbeat-only servers (warranty, SMA) keep their software product, version and modules,
never their health data; the SMA quote prices a real SMA server from its modules; the
edition upgrade credit is reachable from the CLI and the API."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for

SOFTWARE = {"product": "VMS", "version": "6.1", "modules": ["core", "lpr", "analytics"]}


def test_sma_server_keeps_its_software_and_is_priced(
    collector: Collector, make_agent, tmp_path: Path
) -> None:
    key, token = collector.partner("acme")
    today = time.strftime("%Y-%m-%d")
    contracts = tmp_path / "c.csv"
    contracts.write_text(
        f"contract_id,customer,partner,plan,licence_ids,start\nS-1,Shop,acme,sma,LIC-S,{today}\n"
    )
    collector.cli("contracts", "import", str(contracts))
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "module,price\ncore,1000\nlpr,500\nanalytics,300\nProfessional,4000\nEnterprise,9000\n"
    )
    collector.cli("prices", "import", str(prices))
    agent = make_agent(extra_config='licence_id = "LIC-S"\n')
    server_id = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    vols = [{"mountpoint": "/video", "total": 1000, "used": 10, "free": 990}]
    status, ack = post_signed(
        collector.url,
        session,
        "/api/v1/agent/reports",
        batch(report(1, software=SOFTWARE, volumes=vols)),
    )
    assert status == 200 and ack["settings"]["monitoring_entitled"] is False
    view = collector.api(key, f"/api/v1/servers/{server_id}")[1]
    assert view["status"] == "unmonitored" and view["volumes"] == []
    assert view["software"]["product"] == "VMS" and view["software"]["version"] == "6.1"
    # 19 % of (1000 + 500 + 300) = 342.00 in the first year.
    quote = json.loads(collector.cli("sma", "quote", "--server", server_id, "--json"))
    assert (quote["list_total"], quote["price"]) == ("1800.00", "342.00")
    assert collector.api(key, f"/api/v1/servers/{server_id}/sma-quote")[1]["price"] == "342.00"
    # Edition upgrade with an active SMA: 9000 - 4000 credited = 5000.00.
    up = json.loads(
        collector.cli(
            "sma",
            "upgrade",
            "--server",
            server_id,
            "--from",
            "Professional",
            "--to",
            "Enterprise",
            "--json",
        )
    )
    assert (up["price"], up["sma_active"]) == ("5000.00", True)
    status, body = collector.api(
        key, f"/api/v1/servers/{server_id}/sma-upgrade?from=Professional&to=Enterprise"
    )
    assert status == 200 and body["price"] == "5000.00"
    status, body = collector.api(
        key, f"/api/v1/servers/{server_id}/sma-upgrade?from=Professional&to=Nope"
    )
    assert status == 400 and "Nope" in json.dumps(body)

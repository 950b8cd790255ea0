"""Attacks of one partner on another through contracts, over the wire against a real
collector process: two partners, each with its own agents, contracts and incidents.

Each test is the attack; it asserts that nothing of the other partner changed and that
nothing was gained (entitlement, coverage, findings, incidents, firmware knowledge).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.cameras import simulated_cameras
from harness.database import collector_sql
from harness.net import http, wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for

TODAY = time.strftime("%Y-%m-%d")
HEADER = "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"


def call(
    collector: Collector, key: str, method: str, path: str, body: Any = None, ctype: str = ""
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    data = None
    if isinstance(body, str):
        data = body.encode()
        headers["Content-Type"] = ctype or "text/csv"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    status, _, out = http(method, collector.url + path, data, headers)
    return status, json.loads(out) if out else None


def row(cid: str, customer: str, partner: str, plan: str, licence: str) -> str:
    return f"{cid},{customer},{partner},{plan},{licence},{TODAY},{TODAY}\n"


def enrolled(make_agent: Any, collector: Collector, token: str, name: str, licence: str) -> Any:
    """An agent of ``token``'s partner claiming ``licence``: (server id, signed session)."""
    agent = make_agent(name, extra_config=f'licence_id = "{licence}"\n')
    server_id = agent.enroll(collector.url, token)
    return server_id, session_for(agent.state_dir, collector.url)


def send(collector: Collector, session: Any, seq: int, **extra: Any) -> dict[str, Any]:
    status, ack = post_signed(
        collector.url, session, "/api/v1/agent/reports", batch(report(seq, **extra))
    )
    assert status == 200, ack
    return ack


def test_import_naming_another_partners_contract_id_changes_nothing_of_theirs(
    collector: Collector, make_agent: Any
) -> None:
    acme, acme_token = collector.partner("acme")
    rival, _ = collector.partner("rival")
    status, _ = call(
        collector,
        acme,
        "POST",
        "/api/v1/contracts/import",
        HEADER + row("A-1", "Museum", "acme", "maintenance-support", "LIC-A"),
    )
    assert status == 200
    server_id, session = enrolled(make_agent, collector, acme_token, "a1", "LIC-A")
    assert send(collector, session, 1)["settings"]["monitoring_entitled"] is True
    status, inc = call(
        collector,
        acme,
        "POST",
        "/api/v1/incidents",
        {"contract_id": "A-1", "priority": "high", "server_id": server_id, "title": "x"},
    )
    assert status == 201

    # The attack: rival's own import names acme's contract id (and, being rival's full
    # set, would remove whatever else it thinks is its own).
    status, plan = call(
        collector,
        rival,
        "POST",
        "/api/v1/contracts/import",
        HEADER + row("A-1", "Decoy", "rival", "warranty", "LIC-R"),
    )
    assert status == 200 and plan["added"] == ["A-1"] and plan["removed"] == []

    status, mine = call(collector, acme, "GET", "/api/v1/contracts/A-1")
    assert status == 200
    assert mine["contract"]["customer"] == "Museum"
    assert mine["contract"]["licence_ids"] == ["LIC-A"]
    assert [h["contract"]["customer"] for h in mine["history"]] == ["Museum"]
    status, theirs = call(collector, rival, "GET", "/api/v1/contracts/A-1")
    assert status == 200
    assert [h["contract"]["customer"] for h in theirs["history"]] == ["Decoy"]
    # Acme's incident still belongs to acme's contract; rival does not see it.
    status, got = call(collector, acme, "GET", f"/api/v1/incidents/{inc['id']}")
    assert status == 200 and got["contract_id"] == "A-1"
    assert call(collector, rival, "GET", f"/api/v1/incidents/{inc['id']}")[0] == 404
    assert call(collector, rival, "GET", "/api/v1/incidents")[1]["count"] == 0
    # Acme's server is still covered by acme's contract (not rival's warranty).
    servers = call(collector, acme, "GET", "/api/v1/servers")[1]
    view = servers["servers"] if isinstance(servers, dict) else servers
    (mine_server,) = [s for s in view if s["id"] == server_id]
    assert mine_server["contract"]["contract_id"] == "A-1"
    assert mine_server["contract"]["plan"] == "maintenance-support"

    # Acme's next full export (without A-1) removes acme's A-1 only.
    status, plan = call(
        collector,
        acme,
        "POST",
        "/api/v1/contracts/import",
        HEADER + row("A-2", "Museum", "acme", "maintenance-support", "LIC-A"),
    )
    assert status == 200 and plan["removed"] == ["A-1"]
    assert call(collector, rival, "GET", "/api/v1/contracts/A-1")[1]["contract"]["customer"] == (
        "Decoy"
    )


def test_put_on_a_contract_id_another_partner_used_changes_nothing_of_theirs(
    collector: Collector,
) -> None:
    acme, _ = collector.partner("acme")
    rival, _ = collector.partner("rival")
    body = {"customer": "Museum", "plan": "maintenance-support", "licence_ids": "LIC-A"}
    assert call(collector, acme, "PUT", "/api/v1/contracts/A-1", {**body, "start": TODAY})[0] == 200
    assert call(collector, acme, "DELETE", "/api/v1/contracts/A-1")[0] == 200

    # The attack: rival takes the id acme used.
    decoy = {"customer": "Decoy", "plan": "warranty", "licence_ids": "LIC-A", "start": TODAY}
    status, out = call(collector, rival, "PUT", "/api/v1/contracts/A-1", decoy)
    assert status == 200 and out["version"] == 1
    status, theirs = call(collector, rival, "GET", "/api/v1/contracts/A-1")
    assert status == 200
    assert "Museum" not in json.dumps(theirs), "acme's history leaked to rival"
    assert len(theirs["history"]) == 1

    # Acme can use its id again; its history is its own.
    status, out = call(collector, acme, "PUT", "/api/v1/contracts/A-1", {**body, "start": TODAY})
    assert status == 200 and out["version"] == 3
    status, mine = call(collector, acme, "GET", "/api/v1/contracts/A-1")
    assert [h["removed"] for h in mine["history"]] == [False, True, False]
    assert "Decoy" not in json.dumps(mine)
    # Rival changing "A-1" changes its own contract only.
    assert call(collector, rival, "DELETE", "/api/v1/contracts/A-1")[0] == 200
    assert call(collector, acme, "GET", "/api/v1/contracts/A-1")[0] == 200


def test_a_contract_on_another_partners_licence_covers_nothing_of_theirs(
    collector: Collector, make_agent: Any
) -> None:
    acme, acme_token = collector.partner("acme")
    rival, _ = collector.partner("rival")
    call(
        collector,
        acme,
        "POST",
        "/api/v1/contracts/import",
        HEADER + row("A-W", "Bakery", "acme", "warranty", "LIC-A"),
    )
    # The attack: rival puts a rich contract on acme's licence id.
    rich = {
        "customer": "Bakery",
        "plan": "maintenance-support",
        "licence_ids": "LIC-A",
        "start": TODAY,
    }
    assert call(collector, rival, "PUT", "/api/v1/contracts/R-1", rich)[0] == 200

    server_id, session = enrolled(make_agent, collector, acme_token, "a1", "LIC-A")
    cam = {"key": "cam-1", "address": "10.0.0.7", "verdict": "ok"}
    ack = send(collector, session, 1, cameras=[cam])
    assert ack["settings"]["monitoring_entitled"] is False, "rival's contract counted"
    assert ack["settings"]["backup_entitled"] is False
    assert "A-W" in ack["settings"]["notice"] or "Warranty" in ack["settings"]["notice"]
    down = {**cam, "verdict": "unreachable"}
    send(collector, session, 2, cameras=[down])

    view = call(collector, acme, "GET", f"/api/v1/servers/{server_id}")[1]
    assert view["status"] == "unmonitored"
    servers = call(collector, acme, "GET", "/api/v1/servers")[1]
    listed = servers["servers"] if isinstance(servers, dict) else servers
    assert [s["contract"].get("contract_id") for s in listed] == ["A-W"]
    # A check run: acme's findings name acme's contract only; rival has none of acme's.
    collector.cli("check")
    mine = call(collector, acme, "GET", "/api/v1/contract-findings")[1]["findings"]
    assert mine and {f["contract_id"] for f in mine} <= {"A-W", None}
    theirs = call(collector, rival, "GET", "/api/v1/contract-findings")[1]["findings"]
    assert all(f["server_id"] != server_id for f in theirs)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    live = call(collector, acme, "GET", f"/api/v1/contract-findings?at={at}")[1]["findings"]
    assert {f["contract_id"] for f in live} <= {"A-W", None}
    # No incident of acme's server is attached to rival's contract.
    for key in (acme, rival):
        incidents = call(collector, key, "GET", "/api/v1/incidents")[1]["incidents"]
        assert all(i["contract_id"] != "R-1" for i in incidents)
    # The monthly report counts acme's server under acme's contract.
    month = time.strftime("%Y-%m")
    rows = call(collector, acme, "GET", f"/api/v1/reports/monthly?month={month}")[1]["rows"]
    assert {r["partner"] for r in rows} <= {"acme", "(no contract)"}


def test_an_agent_claiming_another_partners_licence_gets_no_entitlement(
    collector: Collector, make_agent: Any
) -> None:
    acme, acme_token = collector.partner("acme")
    rival, rival_token = collector.partner("rival")
    call(
        collector,
        acme,
        "POST",
        "/api/v1/contracts/import",
        HEADER + row("A-W", "Bakery", "acme", "warranty", "LIC-A"),
    )
    call(
        collector,
        rival,
        "POST",
        "/api/v1/contracts/import",
        HEADER + row("R-1", "Depot", "rival", "maintenance-support", "LIC-R"),
    )
    _, rival_session = enrolled(make_agent, collector, rival_token, "r1", "LIC-R")
    assert send(collector, rival_session, 1)["settings"]["monitoring_entitled"] is True

    # The attack: an acme agent claims rival's licence id.
    server_id, session = enrolled(make_agent, collector, acme_token, "a1", "LIC-R")
    ack = send(collector, session, 1)
    assert ack["settings"]["monitoring_entitled"] is False
    assert ack["settings"]["backup_entitled"] is False
    assert "no maintenance contract covers licence LIC-R" in ack["settings"]["notice"]
    listed = call(collector, acme, "GET", "/api/v1/servers")[1]["servers"]
    assert [s["contract"]["coverage"] for s in listed if s["id"] == server_id] == ["none"]


def test_newest_firmware_is_per_partner_and_only_with_firmware_check(
    collector: Collector, make_agent: Any
) -> None:
    acme, acme_token = collector.partner("acme")
    _, rival_token = collector.partner("rival")

    def cam(key: str, firmware: str) -> dict[str, Any]:
        return {
            "key": key,
            "address": "10.0.0.7",
            "verdict": "ok",
            "manufacturer": "Axis",
            "model": "P1455",
            "firmware": firmware,
        }

    a1, s_a1 = enrolled(make_agent, collector, acme_token, "a1", "LIC-A1")
    _, s_r1 = enrolled(make_agent, collector, rival_token, "r1", "LIC-R1")
    send(collector, s_a1, 1, cameras=[cam("door", "10.5.0")], firmware_check=True)
    send(collector, s_r1, 1, cameras=[cam("gate", "11.9.7")], firmware_check=True)

    # Rival's newer firmware is neither shown to acme nor held against acme's camera.
    (door,) = call(collector, acme, "GET", f"/api/v1/servers/{a1}/cameras")[1]["cameras"]
    assert door["newest_firmware"] in (None, "10.5.0")
    assert "11.9.7" not in json.dumps(door)
    assert door["verdict"] == "ok" and door["firmware_outdated"] is False

    # Acme's own newer firmware counts, where the agent has firmware_check on.
    _, s_a2 = enrolled(make_agent, collector, acme_token, "a2", "LIC-A2")
    send(collector, s_a2, 1, cameras=[cam("hall", "10.6.1")], firmware_check=True)
    (door,) = call(collector, acme, "GET", f"/api/v1/servers/{a1}/cameras")[1]["cameras"]
    assert door["firmware_outdated"] is True and door["newest_firmware"] == "10.6.1"
    assert door["verdict"] == "ok"  # a note, not a verdict: counted as every view counts it

    # Switched off on the agent: no comparison for that server.
    send(collector, s_a1, 2, cameras=[cam("door", "10.5.0")])
    (door,) = call(collector, acme, "GET", f"/api/v1/servers/{a1}/cameras")[1]["cameras"]
    assert door["firmware_outdated"] is False and door["verdict"] == "ok"


def test_real_agents_firmware_is_compared_within_the_partner_only(
    collector: Collector, make_agent: Any, tmp_path: Path
) -> None:
    """Two real agents probing simulated cameras: rival's run the newer firmware line of
    each model, acme's the older one. Acme is told nothing of rival's firmware."""
    acme, acme_token = collector.partner("acme")
    rival, rival_token = collector.partner("rival")
    for name in ("acme", "rival"):
        collector.cli("server", "interval", "--partner", name, "2s")
    with simulated_cameras(10, tmp_path) as sim:
        fleet = sim.cameras
        head, *devices = sim.table.split("[[cameras.device]]")
        head = head.replace(
            "[cameras]", "[cameras]\ntimeout_s = 4\nflap_threshold = 1\nfirmware_check = true", 1
        )

        def agent_for(name: str, token: str, indexes: range) -> str:
            chosen = "".join("[[cameras.device]]" + devices[i] for i in indexes)
            agent = make_agent(name)
            agent.config.write_text(agent.config.read_text() + "\n" + head + chosen)
            server_id = agent.enroll(collector.url, token)
            agent.start()
            return server_id

        rival_server = agent_for("rival", rival_token, range(5))  # newer firmware line
        acme_server = agent_for("acme", acme_token, range(5, 10))  # older firmware line

        def cameras(key: str, server_id: str) -> list[dict[str, Any]] | None:
            status, body = call(collector, key, "GET", f"/api/v1/servers/{server_id}/cameras")
            cams = body["cameras"] if status == 200 else []
            return cams if len(cams) == 5 and all(c.get("firmware") for c in cams) else None

        wait_until(lambda: cameras(rival, rival_server), 60, 0.5, "rival's five cameras")
        mine = wait_until(lambda: cameras(acme, acme_server), 60, 0.5, "acme's five cameras")
        newer = {c["firmware"] for c in fleet[:5]} - {c["firmware"] for c in fleet[5:]}
        assert newer, "the simulator's two firmware lines differ"
        for cam in mine:
            assert cam["firmware_outdated"] is False, cam
            assert not any(fw in json.dumps(cam) for fw in newer), "rival's firmware leaked"


def test_one_partners_unreadable_contract_does_not_stop_anothers_checks(
    collector: Collector, make_agent: Any
) -> None:
    """A contract stored before its values were checked (its term ends after 9999) is
    shown as invalid to its partner and never stops the check run of the others."""
    acme, acme_token = collector.partner("acme")
    rival, rival_token = collector.partner("rival")
    acme_server, acme_session = enrolled(make_agent, collector, acme_token, "a1", "LIC-A")
    rival_server, rival_session = enrolled(make_agent, collector, rival_token, "r1", "LIC-R")
    send(collector, acme_session, 1)
    send(collector, rival_session, 1)
    bad = {
        "id": "R-BAD",
        "customer": "Depot",
        "partner": "rival",
        "plan": "maintenance-support",
        "licence_ids": ["LIC-R"],
        "start": "9999-12-01",
        "term_months": 120,
        "auto_renew": False,
    }
    with collector_sql(collector.data_dir, collector.env) as db:
        db.execute(
            "INSERT INTO contract_versions (partner, contract_id, version, valid_from, removed, "
            "data, source) VALUES ('rival', 'R-BAD', 1, 0, 0, ?, 'legacy')",
            (json.dumps(bad),),
        )
        db.execute(
            "INSERT INTO contracts (partner, id, version, customer, plan, data, updated_at) "
            "VALUES ('rival', 'R-BAD', 1, 'Depot', 'maintenance-support', ?, 0)",
            (json.dumps(bad),),
        )
        db.execute(
            "INSERT INTO contract_licences (partner, licence_id, contract_id) "
            "VALUES ('rival', 'LIC-R', 'R-BAD')"
        )

    collector.cli("check")
    mine = call(collector, acme, "GET", "/api/v1/contract-findings")[1]["findings"]
    assert [(f["server_id"], f["kind"]) for f in mine] == [(acme_server, "no_contract")]
    status, theirs = call(collector, rival, "GET", "/api/v1/contracts")
    assert status == 200 and theirs["contracts"][0]["coverage"] == "invalid"
    listed = call(collector, rival, "GET", "/api/v1/servers")[1]["servers"]
    assert [s["contract"]["coverage"] for s in listed if s["id"] == rival_server] == ["invalid"]

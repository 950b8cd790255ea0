"""The contract engine over the wire: the collector app on 127.0.0.1 (``harness.app``,
port 0) with the partner API, one server under each preset through its life.

Servers are enrolled with the core's repository function and their backup runs written
as rows (standing in for agents). Findings are evaluated at given instants with
``GET /api/v1/contract-findings?at=...`` (a live re-evaluation against the current
contract record).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from collector import secrets_store
from collector.config import load_config
from collector.health import servers
from collector.storage import open_database
from harness.app import app_client

T = dt.datetime.fromisoformat


def ts(text: str) -> float:
    return T(text).timestamp()


def _prepare(data: Path) -> dict[str, Any]:
    """Two partners with API keys; four acme servers with backup runs."""
    db = open_database(load_config(None, data))

    def setup(conn: Any) -> dict[str, Any]:
        acme = secrets_store.add_partner(conn, "acme")
        other = secrets_store.add_partner(conn, "other")
        out: dict[str, Any] = {
            "key": secrets_store.create_api_key(conn, acme.id),
            "other_key": secrets_store.create_api_key(conn, other.id),
        }
        for name, lic in (("w", "LW"), ("m", "LM"), ("s", "LS"), ("p", "LP")):
            out[name] = servers.register(
                conn,
                acme.id,
                hostname=name,
                machine_id=f"m-{name}",
                licence_id=lic,
                public_key=b"k" * 32,
                agent_version="1",
                os="debian",
                now=ts("2026-01-15T09:00+00:00"),
            ).server_id
        state = json.dumps({"software": {"product": "VMS", "version": "6.0"}})
        # Reporting "now" (later than every evaluated instant: never silent on those days).
        conn.execute(
            "UPDATE servers SET reports_received = 5, last_seen = ?, state = ?",
            (dt.datetime.now(dt.UTC).timestamp(), state),
        )
        runs = []
        t = ts("2025-06-01T02:00+02:00")
        while t < ts("2026-11-01T00:00+01:00"):
            runs.append((f"m{t}", out["m"], "ok", t - 60, t, t))
            t += 86400
        t = ts("2026-01-01T00:00+00:00")
        while t < ts("2026-11-01T00:00+01:00"):
            runs.append((f"p{t}", out["p"], "ok", t - 60, t, t))
            t += 6 * 3600
        conn.executemany(
            "INSERT INTO backup_runs (id, server_id, outcome, started_at, finished_at, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?)",
            runs,
        )
        # Every run's backup is still stored (retention keeps more than the promise).
        conn.executemany(
            "INSERT INTO backups (id, server_id, seq, kind, created_at, stored_at, envelope, "
            "status) VALUES (?, ?, ?, 'full', ?, ?, '{}', 'verified')",
            [(f"b{i}", r[1], i, r[4], r[4]) for i, r in enumerate(runs)],
        )
        # ...and the collector recorded when it stored each (what the checks count).
        conn.executemany(
            "INSERT INTO backup_stored_times (server_id, seq, stored_at) VALUES (?, ?, ?)",
            [(r[1], i, r[4]) for i, r in enumerate(runs)],
        )
        return out

    try:
        return db.write_sync(setup)
    finally:
        db.close()


Call = Callable[..., Awaitable[tuple[int, Any]]]


def run_api(
    tmp_path: Path,
    scenario: Callable[[Call, dict[str, Any]], Awaitable[None]],
    config_text: str | None = None,
) -> None:
    data = tmp_path / "data"
    ids = _prepare(data)
    config = None
    if config_text is not None:
        config = tmp_path / "collector.toml"
        config.write_text(config_text)

    async def main() -> None:
        async with app_client(data, config) as client:

            async def call(
                method: str,
                path: str,
                body: Any = None,
                *,
                key: str = "key",
                raw: str | None = None,
                ctype: str = "application/json",
            ) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {ids[key]}"}
                kwargs: dict[str, Any] = {"headers": headers}
                if raw is not None:
                    kwargs["data"] = raw.encode()
                    headers["Content-Type"] = ctype
                elif body is not None:
                    kwargs["json"] = body
                async with client.request(method, path, **kwargs) as r:
                    text = await r.text()
                    try:
                        return r.status, json.loads(text)
                    except ValueError:
                        return r.status, text

            await scenario(call, ids)

    asyncio.run(main())


async def kinds_at(call: Call, when: str, server: str) -> set[str]:
    status, body = await call("GET", f"/api/v1/contract-findings?at={when.replace('+', '%2B')}")
    assert status == 200, body
    return {f["kind"] for f in body["findings"] if f["server_id"] == server}


def test_each_preset_through_its_life(tmp_path: Path) -> None:
    async def scenario(call: Call, ids: dict[str, Any]) -> None:
        async def put(cid: str, body: dict[str, Any]) -> dict[str, Any]:
            status, resp = await call("PUT", f"/api/v1/contracts/{cid}", body)
            assert status == 200, resp
            return resp

        w, m, s, p = ids["w"], ids["m"], ids["s"], ids["p"]
        await put(
            "W-1",
            {
                "customer": "Bakery",
                "plan": "warranty",
                "licence_ids": ["LW"],
                "installed_on": "2026-01-15",
            },
        )
        await put(
            "M-1",
            {
                "customer": "Museum",
                "plan": "maintenance-support",
                "licence_ids": ["LM"],
                "start": "2025-06-01",
            },
        )
        await put(
            "S-1", {"customer": "Shop", "plan": "sma", "licence_ids": ["LS"], "start": "2024-02-29"}
        )
        await put(
            "P-1",
            {
                "customer": "Airport",
                "plan": "premium-24x7",
                "licence_ids": ["LP"],
                "start": "2026-01-01",
            },
        )

        # Warranty (90 days from 15 Jan -> last covered day 14 April). 14 Feb: 60 days
        # left; the agent sends reports, which warranty does not include.
        assert await kinds_at(call, "2026-02-14T12:00+01:00", w) == {
            "expiring_60d",
            "health_monitoring_not_entitled",
        }
        # 15 April: expired (no grace in warranty).
        assert await kinds_at(call, "2026-04-15T09:00+02:00", w) == {
            "coverage_expired",
            "health_monitoring_not_entitled",
        }
        # Renewal into Maintenance & Support from 20 April: nothing to report that evening
        # (first backup due by 21 April 06:00: one day + 6 h tolerance from 20 April 00:00).
        await put(
            "M-W",
            {
                "customer": "Bakery",
                "plan": "maintenance-support",
                "licence_ids": ["LW"],
                "start": "2026-04-20",
            },
        )
        assert await kinds_at(call, "2026-04-20T20:00+02:00", w) == set()

        # Maintenance & Support from 1 June 2025, 12 months, 30 days grace; daily backups.
        # 10 May 2026: 22 days left -> expiring_30d.
        assert await kinds_at(call, "2026-05-10T12:00+02:00", m) == {"expiring_30d"}
        assert await kinds_at(call, "2026-06-10T12:00+02:00", m) == {"coverage_grace"}
        assert await kinds_at(call, "2026-07-05T12:00+02:00", m) == {
            "coverage_expired",
            "health_monitoring_not_entitled",
            "online_backup_not_entitled",
        }
        # A renewal entered late (backdated): 5 July is covered on re-evaluation.
        r = await put(
            "M-1",
            {
                "customer": "Museum",
                "plan": "maintenance-support",
                "licence_ids": ["LM"],
                "start": "2025-06-01",
                "renewals": "12",
            },
        )
        assert r["version"] == 2
        assert await kinds_at(call, "2026-07-05T12:00+02:00", m) == set()
        # Early termination agreed: ends 1 August -> cancelled on 2 August, no grace.
        await put(
            "M-1",
            {
                "customer": "Museum",
                "plan": "maintenance-support",
                "licence_ids": ["LM"],
                "start": "2025-06-01",
                "renewals": "12",
                "cancelled_on": "2026-07-15",
                "ends_on": "2026-08-01",
            },
        )
        assert await kinds_at(call, "2026-08-02T12:00+02:00", m) == {
            "coverage_cancelled",
            "health_monitoring_not_entitled",
            "online_backup_not_entitled",
        }
        status, hist = await call("GET", "/api/v1/contracts/M-1")
        assert status == 200 and [h["version"] for h in hist["history"]] == [1, 2, 3]

        # SMA from 29 Feb 2024, auto-renewing, 90 days notice. 15 Oct 2024: last day to
        # cancel is 30 Nov 2024 (see test_terms), 46 days away -> cancel_deadline.
        status, body = await call("GET", "/api/v1/contract-findings?at=2024-10-15T12:00%2B02:00")
        dl = next(
            f for f in body["findings"] if f["server_id"] == s and f["kind"] == "cancel_deadline"
        )
        assert dl["evidence"]["last_day_to_cancel"] == "2024-11-30"
        # Cancelled too late (5 Dec 2024): runs to 28 Feb 2026 -> cancelled on 15 March.
        await put(
            "S-1",
            {
                "customer": "Shop",
                "plan": "sma",
                "licence_ids": ["LS"],
                "start": "2024-02-29",
                "cancelled_on": "2024-12-05",
            },
        )
        assert await kinds_at(call, "2025-06-01T12:00+02:00", s) == {
            "health_monitoring_not_entitled"
        }  # renewed once, monitoring not part of SMA
        assert await kinds_at(call, "2026-03-15T12:00+01:00", s) == {
            "coverage_cancelled",
            "health_monitoring_not_entitled",
        }

        # Premium 24x7 with backups every 6 h: nothing to report on 10 March.
        assert await kinds_at(call, "2026-03-10T12:00+00:00", p) == set()
        # Contract removed: no contract, and the server keeps uploading backups.
        status, _ = await call("DELETE", "/api/v1/contracts/P-1")
        assert status == 200
        assert await kinds_at(call, "2026-03-10T12:00+00:00", p) == {
            "no_contract",
            "online_backup_not_entitled",
        }

    run_api(tmp_path, scenario)


def test_incidents_and_refusals_over_the_api(tmp_path: Path) -> None:
    async def scenario(call: Call, ids: dict[str, Any]) -> None:
        status, _ = await call(
            "PUT",
            "/api/v1/contracts/P-2",
            {
                "customer": "Airport",
                "plan": "premium-24x7",
                "licence_ids": ["LP"],
                "start": "2026-01-01",
            },
        )
        assert status == 200
        # P2 opened Friday 20 Nov 2026 16:00 Berlin: resolution 3 business days -> Wednesday
        # 25 Nov 16:00; response 1 business day -> Monday 23 Nov 16:00.
        status, inc = await call(
            "POST",
            "/api/v1/incidents",
            {
                "contract_id": "P-2",
                "priority": "P2",
                "server_id": ids["p"],
                "opened_at": "2026-11-20T16:00+01:00",
                "title": "camera offline",
            },
        )
        assert status == 201, inc
        assert inc["response"]["due"] == "2026-11-23T16:00:00+01:00"
        assert inc["resolution"]["due"] == "2026-11-25T16:00:00+01:00"
        iid = inc["id"]
        base = f"/api/v1/incidents/{iid}"
        status, inc = await call("POST", f"{base}/acknowledge", {"at": "2026-11-20T16:30+01:00"})
        assert (status, inc["state"], inc["response"]["status"]) == (200, "acknowledged", "met")
        status, inc = await call("POST", f"{base}/resolve", {"at": "2026-11-23T10:00+01:00"})
        assert inc["state"] == "resolved"  # premium: open until the customer accepts
        status, body = await call("POST", f"{base}/acknowledge", {"at": "2026-11-23T11:00+01:00"})
        assert status == 409 and body["error"] == "invalid_transition"
        status, inc = await call(
            "POST", f"{base}/accept", {"at": "2026-11-23T12:00+01:00", "by": "customer"}
        )
        assert (status, inc["state"]) == (200, "closed")
        status, body = await call("GET", "/api/v1/incidents")
        assert [i["id"] for i in body["incidents"]] == [iid]
        # Another partner sees neither the contract nor the incident.
        assert (await call("GET", "/api/v1/contracts/P-2", key="other_key"))[0] == 404
        assert (await call("GET", base, key="other_key"))[0] == 404
        assert (await call("GET", "/api/v1/contracts", key="other_key"))[1]["count"] == 0
        # Bad input: 4xx with a reason, never a 500.
        status, body = await call("POST", "/api/v1/incidents", raw="{not json")
        assert (status, body["error"]) == (400, "invalid_json")
        status, body = await call(
            "POST", "/api/v1/incidents", {"contract_id": "P-2", "priority": "high"}
        )
        assert (status, body["field"]) == (400, "priority")
        status, body = await call("POST", f"{base}/explode", {})
        assert status == 404
        status, body = await call("PUT", "/api/v1/contracts/X", {"plan": "gold"})
        assert status == 400
        # An import with a bad row applies nothing and names the line.
        csv_text = (
            "contract_id,customer,partner,plan,licence_ids,start\n"
            "A-1,Hotel,acme,sma,LX,2026-01-01\n"
            "A-2,Hotel,acme,sma,LY,2026-02-30\n"
        )
        status, body = await call(
            "POST", "/api/v1/contracts/import", raw=csv_text, ctype="text/csv"
        )
        assert status == 400 and body["errors"][0]["line"] == 3
        assert (await call("GET", "/api/v1/contracts/A-1"))[0] == 404
        ok_text = csv_text.replace("2026-02-30", "2026-02-28")
        status, body = await call(
            "POST",
            "/api/v1/contracts/import?dry_run=1&keep_missing=1",
            raw=ok_text,
            ctype="text/csv",
        )
        assert (status, body["added"], body["dry_run"]) == (200, ["A-1", "A-2"], True)
        assert (await call("GET", "/api/v1/contracts/A-1"))[0] == 404
        # Another partner's rows are refused.
        status, body = await call(
            "POST", "/api/v1/contracts/import", raw=ok_text, ctype="text/csv", key="other_key"
        )
        assert status == 403
        # SLA due times and the monthly report.
        status, due = await call(
            "GET", "/api/v1/sla/due?plan=premium-24x7&priority=P1&opened=2026-03-29T01:30%2B01:00"
        )
        assert due["response_due"] == "2026-03-29T03:30:00+02:00"  # across spring forward
        status, rep = await call("GET", "/api/v1/reports/monthly?month=2026-11&by=customer")
        assert status == 200
        airport = next(r for r in rep["rows"] if r["customer"] == "Airport")
        assert (airport["incidents"], airport["response_met"], airport["resolution_met"]) == (
            1,
            1,
            1,
        )
        status, _ = await call("GET", "/api/v1/reports/monthly?month=2026-13")
        assert status == 400

    run_api(tmp_path, scenario)


def test_odd_input_never_gives_a_500(tmp_path: Path) -> None:
    odd_values: list[Any] = [
        None,
        5,
        -1,
        1.5,
        True,
        "",
        "x" * 300,
        [],
        [1, 2],
        {"a": 1},
        "2026-02-30",
        "24:00-09:00",
        "Mars/Base",
        "ZZ",
        "12|x",
    ]
    keys = [
        "customer",
        "plan",
        "licence_ids",
        "start",
        "installed_on",
        "term_months",
        "auto_renew",
        "notice_days",
        "renewals",
        "cancelled_on",
        "country",
        "subdiv",
        "timezone",
        "hours",
        "list_prices",
        "grace_days",
    ]

    async def scenario(call: Call, ids: dict[str, Any]) -> None:
        import random

        rnd = random.Random(3)
        valid = {"customer": "C", "plan": "sma", "licence_ids": ["L"], "start": "2026-01-01"}
        for i in range(120):
            body = dict(valid)
            for k in rnd.sample(keys, rnd.randint(1, 3)):
                body[k] = rnd.choice(odd_values)
            status, resp = await call("PUT", f"/api/v1/contracts/F-{i}", body)
            assert status in (200, 400), (body, status, resp)
        for path, body in [
            ("/api/v1/incidents", {"contract_id": 5, "priority": None}),
            ("/api/v1/incidents", {"contract_id": "F-0", "priority": "high", "opened_at": 7}),
            ("/api/v1/incidents", {"contract_id": "nope", "priority": "high"}),
            ("/api/v1/incidents/nope/acknowledge", {"at": "yesterday"}),
            ("/api/v1/incidents/nope/acknowledge", None),
        ]:
            status, resp = await call("POST", path, body)
            assert 400 <= status < 500, (path, body, status, resp)
        for path in [
            "/api/v1/contract-findings?at=soon",
            "/api/v1/sla/due?plan=sma",
            "/api/v1/sla/due?plan=sma&priority=high&opened=x",
            "/api/v1/sla/due?plan=sma&priority=high&opened=2026-01-01T10:00Z&tz=X/Y",
            "/api/v1/reports/monthly?month=2026-01&tz=Nowhere",
            "/api/v1/servers/nope/sma-quote",
            "/api/v1/contracts/nope",
        ]:
            status, resp = await call("GET", path)
            assert 400 <= status < 500, (path, status, resp)
        status, resp = await call(
            "PUT", "/api/v1/incident-priorities", {"overrides": {"silent": "urgent"}}
        )
        assert status == 400
        status, resp = await call(
            "POST", "/api/v1/contracts/import", raw="\x00\xff garbage", ctype="text/csv"
        )
        assert 400 <= status < 500

    run_api(tmp_path, scenario)


def test_openapi_lists_the_contract_endpoints(tmp_path: Path) -> None:
    async def scenario(call: Call, ids: dict[str, Any]) -> None:
        status, doc = await call("GET", "/api/v1/openapi.json")
        assert status == 200
        assert "/api/v1/incidents/{incident_id}/{action}" in doc["paths"]
        assert "put" in doc["paths"]["/api/v1/contracts/{contract_id}"]

    run_api(tmp_path, scenario)


def test_the_schedule_runs_the_checks(tmp_path: Path) -> None:
    async def scenario(call: Call, ids: dict[str, Any]) -> None:
        status, _ = await call(
            "PUT",
            "/api/v1/contracts/W-9",
            {
                "customer": "Bakery",
                "plan": "warranty",
                "licence_ids": ["LW"],
                "installed_on": "2026-01-15",
            },
        )
        assert status == 200
        # With a 1-second interval the first scheduled run comes after 1 s; poll for it.
        for _ in range(200):
            status, body = await call("GET", "/api/v1/contract-findings")
            if body["count"]:
                break
            await asyncio.sleep(0.1)
        kinds = {(f["server_id"], f["kind"]) for f in body["findings"]}
        # The warranty (15 Jan + 90 days) has ended by now and the server reports.
        assert (ids["w"], "coverage_expired") in kinds
        assert (ids["w"], "health_monitoring_not_entitled") in kinds

    run_api(tmp_path, scenario, "[contracts]\ncheck_interval_s = 1\n")

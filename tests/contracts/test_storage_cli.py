"""Contracts stored in the collector's database, driven through ``vigil-collector``.

Servers are enrolled with the core's repository function and their reports/backups are
written as rows, standing in for agents.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from collector import secrets_store
from collector.cli import main
from collector.config import load_config
from collector.contracts import service
from collector.health import servers
from collector.storage import open_database

T = dt.datetime.fromisoformat


class Cli:
    def __init__(self, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data = data
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--data", str(self.data)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> dict:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    data = tmp_path / "data"
    cli = Cli(data, capsys)
    assert cli("partner", "add", "acme")[0] == 0
    db = open_database(load_config(None, data))
    try:

        def enroll(conn):  # type: ignore[no-untyped-def]
            pid = secrets_store.partner_by_name(conn, "acme").id
            ids = []
            for host, lic, machine in (("museum", "L1", "m1"), ("bakery", "L2", "m2")):
                ids.append(
                    servers.register(
                        conn,
                        pid,
                        hostname=host,
                        machine_id=machine,
                        licence_id=lic,
                        public_key=b"k" * 32,
                        agent_version="1",
                        os="debian",
                        now=T("2026-01-15T09:00+00:00").timestamp(),
                    ).server_id
                )
            state = json.dumps(
                {"software": {"product": "VMS", "version": "6.1", "modules": ["base", "lpr"]}}
            )
            conn.execute(
                "UPDATE servers SET reports_received = 10, last_seen = ?, state = ?",
                (time.time() - 30, state),
            )
            return ids

        cli.ids = db.write_sync(enroll)  # type: ignore[attr-defined]
    finally:
        db.close()
    return cli


CONTRACTS = """\
contract_id,customer,partner,plan,licence_ids,start,installed_on,term_months
M-1,Museum,acme,maintenance-support,L1,2026-01-01,,60
W-1,Bakery,acme,warranty,L2,,2026-01-15,
"""


def test_import_dry_run_then_apply_then_bad_file(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    dry = fleet.json("contracts", "import", str(f), "--dry-run")
    assert (dry["dry_run"], dry["added"]) == (True, ["M-1", "W-1"])
    assert fleet.json("contracts", "list")["count"] == 0  # the dry run changed nothing
    done = fleet.json("contracts", "import", str(f))
    assert done["added"] == ["M-1", "W-1"]
    assert fleet.json("contracts", "list")["count"] == 2
    # A file with one bad row (line 3) applies nothing, not even its good first row.
    bad = tmp_path / "bad.csv"
    bad.write_text(CONTRACTS.replace(",60\n", ",48\n").replace("warranty", "platinum"))
    code, _, err = fleet("contracts", "import", str(bad))
    assert code != 0
    assert "line 3, plan: unknown plan 'platinum'" in err
    shown = fleet.json("contracts", "show", "M-1")
    assert shown["contract"]["term_months"] == 60
    assert len(shown["history"]) == 1
    # A change keeps the old version in the history.
    fleet.json("contracts", "import", str(f).replace("erp", "erp"))
    f.write_text(CONTRACTS.replace(",60\n", ",48\n"))
    changed = fleet.json("contracts", "import", str(f))
    assert changed["changed"] == [{"id": "M-1", "fields": ["term_months"]}]
    assert [h["version"] for h in fleet.json("contracts", "show", "M-1")["history"]] == [1, 2]


def test_check_findings_incidents_and_entitlement(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    rel = tmp_path / "releases.csv"
    rel.write_text("product,version,released_on\nVMS,6.0,2025-10-01\nVMS,6.1,2026-03-01\n")
    assert fleet.json("releases", "import", str(rel))["added"] == 2
    museum, bakery = fleet.ids  # type: ignore[attr-defined]
    # Evaluated now (both servers reported 30 s ago, so neither is silent).
    result = fleet.json("check", "--no-incidents")
    kinds = {(x["server_id"], x["kind"]) for x in result["findings"]}
    # The bakery's warranty (15 Jan + 90 days) is over by now -> expired, and it sends
    # reports without entitlement; 6.1 (1 March 2026) is after its installation.
    assert (bakery, "coverage_expired") in kinds
    assert (bakery, "health_monitoring_not_entitled") in kinds
    assert (bakery, "version_not_covered") in kinds
    # The museum is covered (5 years from 1 Jan 2026) but has never backed up: overdue.
    assert (museum, "backup_overdue") in kinds
    assert not any(s == museum and k.startswith("coverage") for s, k in kinds)
    # The same run opening incidents: backup_overdue maps to medium by default (the low
    # backup compliance of the same server is a report figure, no incident).
    opened = fleet.json("check")
    assert len(opened["incidents_opened"]) == 1
    again = fleet.json("check")
    assert again["incidents_opened"] == []  # still open: not opened twice
    incs = fleet.json("incident", "list")["incidents"]
    assert [(i["server_id"], i["priority"], i["source"]) for i in incs] == [
        (museum, "medium", "finding:backup_overdue")
    ]
    db = open_database(load_config(None, fleet.data))
    try:
        ans = db.read_sync(lambda c: service.entitlement(c, bakery, "online_backup"))
        assert not ans.entitled and "expired" in ans.reason
        assert db.read_sync(lambda c: service.entitlement(c, museum, "online_backup")).entitled
    finally:
        db.close()


def test_manual_incident_through_cli(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    # A ticket imported from another help desk, opened Wednesday 18 Nov 2026 10:00 Berlin.
    inc = fleet.json(
        "incident",
        "open",
        "--contract",
        "M-1",
        "--priority",
        "high",
        "--opened",
        "2026-11-18T10:00+01:00",
        "--title",
        "recording stopped",
    )
    # 4 business hours -> 14:00 the same day.
    assert inc["response"]["due"] == "2026-11-18T14:00:00+01:00"
    iid = inc["id"]
    acked = fleet.json("incident", "acknowledge", iid, "--at", "2026-11-18T11:00+01:00")
    assert acked["state"] == "acknowledged"
    assert acked["response"]["status"] == "met"
    code, _, err = fleet("incident", "acknowledge", iid, "--at", "2026-11-18T12:00+01:00")
    assert code != 0 and "cannot acknowledge" in err
    done = fleet.json("incident", "resolve", iid, "--at", "2026-11-18T15:00+01:00")
    assert done["state"] == "closed"  # maintenance & support: no customer acceptance
    code, _, err = fleet("incident", "open", "--contract", "M-1", "--priority", "P1")
    assert code != 0 and "priorities high, medium, low" in err
    report = fleet.json("report", "--month", "2026-11")
    museum = next(r for r in report if r["customer"] == "Museum")
    assert (museum["incidents"], museum["response_met"], museum["response_total"]) == (1, 1, 1)
    code, out, _ = fleet("report", "--month", "2026-11", "--format", "csv", "--by", "partner")
    assert code == 0 and out.splitlines()[0].startswith("month,partner,customer")


def test_sma_quote_from_reported_modules(fleet: Cli, tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("module;price\nbase;10000\nlpr;2500,00\n")
    assert fleet.json("prices", "import", str(prices))["imported"] == 2
    museum = fleet.ids[0]  # type: ignore[attr-defined]
    q = fleet.json("sma", "quote", "--server", museum)
    # base 10,000 + lpr 2,500 = 12,500 list; 19% first year -> 2,375.00.
    assert (q["list_total"], q["price"]) == ("12500.00", "2375.00")


def test_scheduler_lease_has_one_holder(tmp_path: Path) -> None:
    from collector.contracts.repository import acquire_lease

    db = open_database(load_config(None, tmp_path / "d"))
    try:
        lease = "contract-checks"
        assert db.write_sync(lambda c: acquire_lease(c, lease, "a", 1000.0, 900.0))
        # b is refused while a's lease runs (until 1900), a renews it.
        assert not db.write_sync(lambda c: acquire_lease(c, lease, "b", 1500.0, 900.0))
        assert db.write_sync(lambda c: acquire_lease(c, lease, "a", 1500.0, 900.0))
        # a stops renewing: after 2400 b takes over.
        assert not db.write_sync(lambda c: acquire_lease(c, lease, "b", 2399.0, 900.0))
        assert db.write_sync(lambda c: acquire_lease(c, lease, "b", 2401.0, 900.0))
    finally:
        db.close()


def test_findings_are_rewritten_only_where_they_changed() -> None:
    from collector.contracts.checks import Finding, Severity
    from collector.contracts.repository import diff_findings, finding_key

    def f(server: str, kind: str, days: int) -> Finding:
        return Finding(kind, Severity.INFO, server, "C", "x: term", "m", {"days_left": days})

    first = [f("s1", "expiring_60d", 50), f("s2", "silent", 0)]
    d1 = diff_findings({}, first, 100.0, {"s1": "acme", "s2": "acme"}, {})
    assert (len(d1.inserts), len(d1.updates), len(d1.deletes)) == (2, 0, 0)
    # Store as the database would: fkey -> (row id, digest).
    stored = {row[1]: (i, row[-1]) for i, row in enumerate(d1.inserts)}
    # Next run: s1's evidence changed (49 days), s2's finding is gone, s3 is new.
    second = [f("s1", "expiring_60d", 49), f("s3", "silent", 0)]
    d2 = diff_findings(stored, second, 200.0, {}, {"C": "acme"})
    assert [row[1] for row in d2.inserts] == [finding_key(second[1], "acme")]
    assert [row[-1] for row in d2.updates] == [0]  # row id of s1's finding
    assert d2.deletes == [1]  # s2's
    # Unchanged findings cost nothing.
    assert len(diff_findings(stored, first, 300.0, {"s1": "acme", "s2": "acme"}, {})) == 0


def test_contract_backup_policy_for_the_backups_module(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    museum, bakery = fleet.ids  # type: ignore[attr-defined]
    db = open_database(load_config(None, fleet.data))
    try:
        policy = db.read_sync(lambda c: service.contract_backup_policy(c, museum))
        # Maintenance & Support: daily, keep last 7 / daily 7 / weekly 4 / monthly 12.
        assert policy.interval_s == 86400
        assert (policy.retention.keep_last, policy.retention.keep_monthly) == (7, 12)
        # Warranty (and expired): no online backup -> None.
        assert db.read_sync(lambda c: service.contract_backup_policy(c, bakery)) is None
    finally:
        db.close()


def test_health_finding_from_elsewhere_opens_one_incident(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    museum, bakery = fleet.ids  # type: ignore[attr-defined]
    db = open_database(load_config(None, fleet.data))
    try:

        def raise_it(c):  # type: ignore[no-untyped-def]
            return service.open_incident_for_finding(c, museum, "volume_full_48h", "disk fills")

        first = db.write_sync(raise_it)
        assert first is not None
        assert db.write_sync(raise_it) is None  # still open: not twice
        # The bakery's warranty has expired: no incident.
        assert (
            db.write_sync(
                lambda c: service.open_incident_for_finding(c, bakery, "camera_offline", "cam")
            )
            is None
        )
    finally:
        db.close()
    incs = fleet.json("incident", "list")["incidents"]
    # Recording volume full within 48 h = high by default.
    assert [(i["id"], i["priority"]) for i in incs] == [(first, "high")]


def test_scheduled_run_stores_findings(fleet: Cli, tmp_path: Path) -> None:
    import asyncio

    from collector.contracts import repository

    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    museum, _ = fleet.ids  # type: ignore[attr-defined]
    db = open_database(load_config(None, fleet.data))
    try:
        result = asyncio.run(service.run_checks(db))
        stored = db.read_sync(lambda c: repository.list_findings(c, "acme"))
        assert sorted((x["server_id"], x["kind"]) for x in stored) == sorted(
            (x.server_id, x.kind) for x in result.findings
        )
        # The museum never backed up: its overdue backup opened an incident (medium).
        assert [(i.server_id, i.priority) for i, _, _ in result.new_incidents] == [
            (museum, "medium")
        ]
    finally:
        db.close()


def test_import_warns_about_unknown_partners(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "ghost.csv"
    f.write_text(CONTRACTS.replace("acme", "ghost"))
    code, out, err = fleet("contracts", "import", str(f))
    assert code == 0
    assert "partner 'ghost' is not known yet" in err
    assert "changed: 2 added, 0 changed, 0 removed, 0 unchanged" in out


def test_entitlement_cache_answers_from_memory_until_ttl(fleet: Cli, tmp_path: Path) -> None:
    from collector.contracts import repository

    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    museum, _ = fleet.ids  # type: ignore[attr-defined]
    cache = service.EntitlementCache(ttl=60)
    db = open_database(load_config(None, fleet.data))
    try:
        now = time.time()
        first = db.read_sync(lambda c: cache.get(c, museum, "online_backup", now))
        assert first.entitled
        # The contract is removed; within the TTL the cached answer stands, after it not.
        db.write_sync(lambda c: repository.record_version(c, "M-1", "acme", None, now, "test"))
        assert db.read_sync(lambda c: cache.get(c, museum, "online_backup", now + 30)) is first
        later = db.read_sync(lambda c: cache.get(c, museum, "online_backup", now + 61))
        assert not later.entitled and "no maintenance contract" in later.reason
    finally:
        db.close()


def test_coverage_by_server_for_the_fleet_view(fleet: Cli, tmp_path: Path) -> None:
    f = tmp_path / "erp.csv"
    f.write_text(CONTRACTS)
    fleet.json("contracts", "import", str(f))
    museum, bakery = fleet.ids  # type: ignore[attr-defined]
    db = open_database(load_config(None, fleet.data))
    try:
        # 10 Feb 2026 12:00 Berlin.
        at = T("2026-02-10T12:00+01:00").timestamp()
        cov = db.read_sync(lambda c: service.coverage_by_server(c, at, "acme"))
    finally:
        db.close()
    # Museum: 60 months from 1 Jan 2026 -> last covered day 31 Dec 2030.
    assert (cov[museum]["coverage"], cov[museum]["last_covered_day"]) == ("active", "2030-12-31")
    # Bakery: warranty from 15 Jan, 90 days -> last covered day 14 April; 10 Feb -> 15 April
    # is 18 (rest of Feb) + 31 + 15 = 64 days.
    assert (cov[bakery]["plan"], cov[bakery]["days_left"]) == ("warranty", 64)

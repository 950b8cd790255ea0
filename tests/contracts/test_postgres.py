"""The contract engine's SQL on PostgreSQL by itself: migrations 0030-0032, the
notification tables its writes fill (0120), the servers' versions (0320) and the
repository functions over the backend's connection, on a private server started for this
module (``harness/database.py``), beside only the columns of the core tables it joins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from collector.contracts import repository as repo
from collector.contracts.checks import Finding, Severity
from collector.contracts.importer import parse_contracts, plan_import
from collector.contracts.incidents import apply, open_incident
from collector.contracts.plans import MAINTENANCE_SUPPORT
from collector.health import history
from collector.storage.migrations import _statements, available
from collector.storage.postgres import PgConnection
from harness.database import private_postgres

D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def pg() -> Iterator[PgConnection]:
    with private_postgres() as server:
        c = PgConnection(server.new_database())
        try:
            # The core tables the repository joins (0001/0020, reduced to the columns used).
            c.execute(
                "CREATE TABLE partners (id INTEGER PRIMARY KEY, name TEXT UNIQUE, "
                "created_at DOUBLE PRECISION)"
            )
            c.execute(
                "CREATE TABLE servers (id TEXT PRIMARY KEY, partner_id INTEGER, "
                "machine_id TEXT, licence_id TEXT, last_seen DOUBLE PRECISION, "
                "enrolled_at DOUBLE PRECISION, reports_received INTEGER DEFAULT 0, "
                "state TEXT DEFAULT '{}', revoked_at DOUBLE PRECISION)"
            )
            c.execute(
                "CREATE TABLE backup_runs (id TEXT PRIMARY KEY, server_id TEXT, "
                "outcome TEXT, finished_at DOUBLE PRECISION)"
            )
            c.execute(
                "CREATE TABLE backups (id TEXT PRIMARY KEY, server_id TEXT, "
                "created_at DOUBLE PRECISION, status TEXT)"
            )
            c.execute("CREATE TABLE reports (server_id TEXT, collected_at DOUBLE PRECISION)")
            c.execute(
                "CREATE TABLE backup_stored_times (server_id TEXT, seq BIGINT, "
                "stored_at DOUBLE PRECISION, PRIMARY KEY (server_id, seq))"
            )
            for version, _, sql in available("postgresql"):
                # contracts, notifications, server versions
                if 30 <= version <= 49 or 120 <= version <= 139 or version == 320:
                    for stmt in _statements(sql):
                        c.execute(stmt)
            yield c
        finally:
            c.close()


CSV = """\
contract_id,customer,partner,plan,licence_ids,start,installed_on
M-1,Museum,acme,maintenance-support,L1,2026-01-01,
W-1,Bakery,acme,warranty,L2,,2026-01-15
"""


def test_repository_on_postgresql(pg: PgConnection) -> None:
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()
    pg.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'acme', 0)")
    pg.execute(
        "INSERT INTO servers (id, partner_id, machine_id, licence_id, last_seen, enrolled_at, "
        "reports_received) VALUES ('s1', 1, 'm1', 'L1', ?, ?, 3)",
        (now - 30, now - 86400 * 40),
    )
    incoming = parse_contracts(CSV)
    plan = plan_import(repo.all_current_contracts(pg), incoming)
    repo.apply_import(pg, plan, now, "test")
    assert sorted(repo.current_contracts(pg, "acme")) == ["M-1", "W-1"]
    assert [c.id for c in repo.contracts_for_licence(pg, "acme", "L1")] == ["M-1"]
    assert repo.partner_has_contracts(pg, "acme")
    # A change appends a version.
    changed = plan_import(
        repo.all_current_contracts(pg), parse_contracts(CSV.replace("Museum", "MoMA"))
    )
    repo.apply_import(pg, changed, now + 1, "test")
    assert [v.contract.customer for v in repo.history(pg, "acme", "M-1") if v.contract] == [
        "Museum",
        "MoMA",
    ]
    # Facts, findings diff, incidents, lease, releases, prices, priority map.
    fleet = repo.fleet_facts(pg, now, partner="acme")
    assert [s.server_id for s in fleet.servers] == ["s1"]
    f1 = Finding("backup_overdue", Severity.WARNING, "s1", "M-1", "x", "m", {"overdue_s": 5})
    changes = repo.diff_findings(repo.stored_findings(pg), [f1], now, {"s1": "acme"}, {})
    repo.apply_finding_changes(pg, changes)
    assert [x["kind"] for x in repo.list_findings(pg, "acme")] == ["backup_overdue"]
    inc = open_incident(
        "INC-1",
        MAINTENANCE_SUPPORT,
        "high",
        dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC),
        contract_id="M-1",
        server_id="s1",
    )
    repo.insert_incident(pg, inc, "acme", now, "s1:backup_overdue")
    assert "s1:backup_overdue" in repo.open_finding_keys(pg)
    acked = apply(inc, "acknowledge", dt.datetime(2026, 3, 2, 11, tzinfo=dt.UTC))
    repo.save_incident(pg, acked, now)
    got = repo.get_incident(pg, "INC-1")
    assert got is not None and len(got[0].events) == 2
    assert [i.id for i in repo.list_incidents(pg, "acme", state="acknowledged")] == ["INC-1"]
    assert repo.acquire_lease(pg, "contract-checks", "a", now, 900)
    assert not repo.acquire_lease(pg, "contract-checks", "b", now + 1, 900)
    from collector.contracts.importer import Release

    assert repo.upsert_releases(pg, [Release("VMS", "6.1", D("2026-03-01"))]) == (1, 0)
    assert repo.load_releases(pg) == {("VMS", "6.1"): D("2026-03-01")}
    from decimal import Decimal

    repo.set_module_prices(pg, {"base": Decimal("100.50")}, now)
    assert repo.module_prices(pg) == {"base": Decimal("100.50")}
    repo.set_priority_map(pg, "acme", {"silent": None}, now)
    assert repo.priority_map(pg, "acme") == {"silent": None}


def test_check_run_on_postgresql(pg: PgConnection) -> None:
    from collector.contracts import service

    # Its own partner, server (licence L9, never backed up) and contract (Maintenance &
    # Support from 1 Jan 2026), so it does not depend on the other test. On 1 March 2026
    # the backup is overdue.
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()
    pg.execute("INSERT INTO partners (id, name, created_at) VALUES (2, 'beta', 0)")
    pg.execute(
        "INSERT INTO servers (id, partner_id, machine_id, licence_id, last_seen, enrolled_at, "
        "reports_received) VALUES ('s9', 2, 'm9', 'L9', ?, ?, 3)",
        (now - 30, now - 86400 * 40),
    )
    (c9,) = parse_contracts(
        "contract_id,customer,partner,plan,licence_ids,start\n"
        "B-9,Depot,beta,maintenance-support,L9,2026-01-01\n"
    )
    repo.record_version(pg, c9.id, c9.partner, c9, now, "test")
    inputs = service.gather(pg, now)
    result = service.compute(inputs)
    for step in service.persist_steps(inputs.stored_findings, result):
        step(pg)
    stored = {(x["server_id"], x["kind"]) for x in repo.list_findings(pg, "beta")}
    assert ("s9", "backup_overdue") in stored
    # A second run changes nothing that is unchanged (the overdue time grew: one update).
    inputs2 = service.gather(pg, now + 60)
    result2 = service.compute(inputs2)
    for step in service.persist_steps(inputs2.stored_findings, result2):
        step(pg)
    assert {(x["server_id"], x["kind"]) for x in repo.list_findings(pg, "beta")} == stored


def test_contract_ids_are_unique_per_partner_on_postgresql(pg: PgConnection) -> None:
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()
    head = "contract_id,customer,partner,plan,licence_ids,start\n"
    (a,) = parse_contracts(head + "T-1,Museum,tenant-a,maintenance-support,LT,2026-01-01\n")
    (b,) = parse_contracts(head + "T-1,Decoy,tenant-b,warranty,LT,2026-01-01\n")
    repo.record_version(pg, "T-1", "tenant-a", a, now, "test")
    repo.record_version(pg, "T-1", "tenant-b", b, now, "test")
    assert repo.get_contract(pg, "tenant-a", "T-1") == a
    assert repo.get_contract(pg, "tenant-b", "T-1") == b
    assert [c.customer for c in repo.contracts_for_licence(pg, "tenant-a", "LT")] == ["Museum"]
    repo.record_version(pg, "T-1", "tenant-b", None, now + 1, "test")
    assert repo.get_contract(pg, "tenant-a", "T-1") == a
    assert [v.contract is None for v in repo.history(pg, "tenant-b", "T-1")] == [False, True]
    assert len(repo.history(pg, "tenant-a", "T-1")) == 1


def test_the_oldest_report_on_postgresql(pg: PgConnection) -> None:
    # Found per server through its index; the same as the least of all report times.
    pg.execute("INSERT INTO partners (id, name, created_at) VALUES (7, 'oldest', 0)")
    for sid in ("o1", "o2", "o3"):
        pg.execute("INSERT INTO servers (id, partner_id, enrolled_at) VALUES (?, 7, 0)", (sid,))
    before = history.oldest_time(pg)
    times = [("o1", 5000.5), ("o1", 300.25), ("o2", 4000.0)]
    for sid, t in times:
        pg.execute("INSERT INTO reports (server_id, collected_at) VALUES (?, ?)", (sid, t))
    least = min(t for _, t in times)
    assert history.oldest_time(pg) == (least if before is None else min(before, least))

"""Backups count when the collector stored and verified them, whatever the agent said;
overdue waits for the backup window; a server not entitled to backups is never overdue."""

from __future__ import annotations

import datetime as dt
import os
import time

from collector.backups import promise
from collector.backups.policy import BackupPolicy
from collector.backups.status import backup_status, fleet_backup_status
from collector.contracts import repository as repo
from collector.contracts.checks import evaluate
from collector.contracts.importer import parse_contracts, plan_import

from .conftest import Fleet
from .test_uploads import run, service, upload


def give_contract(fleet: Fleet, server_id: str, plan: str, licence: str) -> None:
    start = (dt.date.today() - dt.timedelta(days=40)).isoformat()
    text = (
        "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"
        f"C-{licence},Museum,acme,{plan},{licence},{start},{start}\n"
    )

    def go(c):
        c.execute("UPDATE servers SET licence_id = ? WHERE id = ?", (licence, server_id))
        repo.apply_import(c, plan_import({}, parse_contracts(text)), time.time(), "test")

    fleet.db.write_sync(go)


def kinds_for(fleet: Fleet, server_id: str, now: float) -> set[str]:
    def go(c):
        facts = repo.fleet_facts(c, now, partner="acme", with_kept=False)
        contracts = list(repo.current_contracts(c, "acme").values())
        return {f.kind for f in evaluate(facts.servers, contracts, now) if f.server_id == server_id}

    return fleet.db.read_sync(go)


def test_stored_verified_backups_count_without_any_reported_run(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    give_contract(fleet, a.server_id, "maintenance-support", "LIC-A")
    svc = service(fleet)
    for _ in range(4):
        data = os.urandom(1000)
        run(upload(svc, a.server_id, a.envelope(data), data, a.public_key))
    now = time.time()
    # Four stored, verified backups and not one run reported: not overdue.
    assert "backup_overdue" not in kinds_for(fleet, a.server_id, now)
    st = fleet.db.read_sync(lambda c: backup_status(c, a.server_id, now))
    assert st["state"] == "ok" and st["last_success"] is not None and not st["overdue"]


def test_a_reported_run_without_a_stored_backup_does_not_count(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    give_contract(fleet, a.server_id, "maintenance-support", "LIC-A")
    svc = service(fleet)
    now = time.time()
    body = b'{"outcome": "ok", "started_at": %f, "finished_at": %f}' % (now - 100, now - 90)
    run(svc.record_run(a.server_id, body))
    # Enrolled an hour ago under a contract that started 40 days ago: the first slot ends
    # a day after enrollment, so nothing is due yet; a day and a half later it is.
    assert "backup_overdue" not in kinds_for(fleet, a.server_id, now)
    later = now + 30 * 3600 + 2
    st = fleet.db.read_sync(lambda c: backup_status(c, a.server_id, later))
    assert st["last_success"] is None and st["overdue"]


def test_overdue_waits_for_the_backup_window(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    data = os.urandom(1000)
    run(upload(service(fleet), a.server_id, a.envelope(data), data, a.public_key))
    fleet.db.write_sync(
        lambda c: promise.store_policy(
            c, "server", a.server_id, BackupPolicy(window="01:00-05:00"), time.time()
        )
    )
    stored = fleet.db.read_sync(lambda c: backup_status(c, a.server_id))["last_success"]
    # Daily, window 4 h a day: a backup due outside the window may wait up to 20 h for it.
    st = fleet.db.read_sync(lambda c: backup_status(c, a.server_id, stored + 86400 + 3600))
    assert st["next_due"] == stored + 86400 + 20 * 3600 and not st["overdue"]
    st = fleet.db.read_sync(lambda c: backup_status(c, a.server_id, stored + 44 * 3600 + 1))
    assert st["overdue"] and st["state"] == "overdue"


def test_a_server_not_entitled_is_not_entitled_never_overdue(fleet: Fleet) -> None:
    a = fleet.agents["srv-a"]
    give_contract(fleet, a.server_id, "warranty", "LIC-W")
    far = time.time() + 10 * 86400
    st = fleet.db.read_sync(lambda c: backup_status(c, a.server_id, far))
    assert (st["state"], st["overdue"], st["next_due"]) == ("not_entitled", False, None)
    pid = fleet.agents["srv-a"].partner_id
    rows = fleet.db.read_sync(lambda c: fleet_backup_status(c, pid, far))
    assert rows[a.server_id]["state"] == "not_entitled" and not rows[a.server_id]["overdue"]
    # The other server of the partner has no licence and so no contract: not entitled
    # either (the partner uses contracts); a partner without contracts is not checked.
    assert rows["srv-b"]["state"] == "not_entitled"
    other = fleet.db.read_sync(lambda c: fleet_backup_status(c, None, far))["srv-c"]
    assert other["state"] == "overdue"

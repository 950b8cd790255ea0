"""Where events come from besides camera verdicts: the sweep (offline servers), a report
from a server that was offline, volumes filling, contract findings and incidents."""

from __future__ import annotations

import asyncio
import datetime as dt

from collector.contracts import repository as repo
from collector.contracts.incidents import Action, apply, open_incident
from collector.contracts.plans import get_plan
from collector.notify import sources
from collector.notify.channel_secrets import SecretBox, load_notify_key
from protocol.messages import Disk, Volume
from tests.notify.support import T0, Clock, make_db, notifier


def _events(db, after=0):
    return db.read_sync(
        lambda c: [
            (r[0], r[1], r[2], r[3])
            for r in c.execute(
                "SELECT kind, status, dedup_key, severity FROM notify_events WHERE id > ? "
                "ORDER BY id",
                (after,),
            )
        ]
    )


def _last_id(db):
    return db.read_sync(lambda c: c.execute("SELECT COALESCE(MAX(id), 0) FROM notify_events"))


def test_silent_server_goes_offline_in_the_sweep_and_is_back_with_its_next_report(tmp_path):
    db = make_db(tmp_path, servers=2)
    db.write_sync(
        lambda c: c.execute("UPDATE servers SET last_seen = ?, enrolled_at = ?", (T0 - 60, T0 - 60))
    )
    clock = Clock(T0)
    n = notifier(db, SecretBox(load_notify_key(tmp_path)), clock)
    assert asyncio.run(n.sweep()) == 0  # seen a minute ago: online
    clock.t = T0 + 600
    assert asyncio.run(n.sweep()) == 2
    assert asyncio.run(n.sweep()) == 0  # still offline: nothing new
    assert _events(db) == [
        ("server.offline", "firing", "server:s0", "critical"),
        ("server.offline", "firing", "server:s1", "critical"),
    ]

    def report(c):  # what ingest does for a newer report
        c.execute("UPDATE servers SET last_seen = ? WHERE id = 's0'", (clock.t,))
        sources.report_stored(c, "s0", [], clock.t)

    db.write_sync(report)
    assert _events(db)[2:] == [("server.offline", "resolved", "server:s0", "critical")]
    assert asyncio.run(n.sweep()) == 0
    db.close()


def test_a_volume_filling_fires_once_and_clears_when_the_forecast_moves_away(tmp_path):
    db = make_db(tmp_path)
    vol = Volume(
        mountpoint="/video", total=100, used=90, free=10, recording=True, full_at=T0 + 3600
    )
    for i in range(3):
        db.write_sync(lambda c, i=i: sources.report_stored(c, "s0", [vol], T0 + i))
    db.write_sync(lambda c: sources.report_stored(c, "s0", [], T0 + 10))
    assert [e[:3] for e in _events(db)] == [
        ("volume.filling", "firing", "volume:s0:/video"),
        ("volume.filling", "resolved", "volume:s0:/video"),
    ]
    db.close()


def test_a_failing_disk_fires_once_and_clears_when_smart_no_longer_says_so(tmp_path):
    db = make_db(tmp_path)
    disk = Disk(
        device="/dev/sdb",
        model="ST4000VX007",
        health="failing",
        failing=["Reallocated_Sector_Ct at or below its threshold (9 <= 10)"],
    )
    for i in range(3):
        db.write_sync(lambda c, i=i: sources.report_stored(c, "s0", [], T0 + i, [disk]))
    db.write_sync(lambda c: sources.report_stored(c, "s0", [], T0 + 10, []))
    assert [e[:4] for e in _events(db)] == [
        ("disk.failing", "firing", "disk:s0:/dev/sdb", "high"),
        ("disk.failing", "resolved", "disk:s0:/dev/sdb", "high"),
    ]
    db.close()


def test_contract_findings_and_incidents_write_their_events_in_the_same_write(tmp_path):
    db = make_db(tmp_path)
    row = (
        T0,
        "acme|s0|C1|contract_expiring|",
        "acme",
        "s0",
        "C1",
        "contract_expiring",
        "warning",
        "maintenance-support: term",
        "contract C1 ends in 30 days",
        "{}",
        "d",
    )
    db.write_sync(lambda c: repo.apply_finding_changes(c, repo.FindingChanges([row], [], [])))
    fid = db.read_sync(lambda c: c.execute("SELECT id FROM contract_findings").fetchone()[0])
    db.write_sync(lambda c: repo.apply_finding_changes(c, repo.FindingChanges([], [], [fid])))
    key = "finding:acme|s0|C1|contract_expiring|"
    assert _events(db) == [
        ("contract.finding", "firing", key, "warning"),
        ("contract.finding", "resolved", key, "warning"),
    ]

    # 90 days left became 60: one new event, no "resolved" for the 90 in between.
    def expiring(days):
        return (
            T0,
            f"acme|s0|C1|expiring_{days}d|",
            "acme",
            "s0",
            "C1",
            f"expiring_{days}d",
            "info",
            "term",
            f"the contract ends within {days} days",
            "{}",
            "d",
        )

    db.write_sync(
        lambda c: repo.apply_finding_changes(c, repo.FindingChanges([expiring(90)], [], []))
    )
    fid = db.read_sync(lambda c: c.execute("SELECT id FROM contract_findings").fetchone()[0])
    db.write_sync(
        lambda c: repo.apply_finding_changes(c, repo.FindingChanges([expiring(60)], [], [fid]))
    )
    assert [e[2] for e in _events(db)[2:]] == [
        "finding:acme|s0|C1|expiring_90d|",
        "finding:acme|s0|C1|expiring_60d|",
    ]
    start = len(_events(db))
    opened = dt.datetime.fromtimestamp(T0, dt.UTC)

    def run_incident(iid, plan, priority, actions):
        inc = open_incident(iid, get_plan(plan), priority, opened, server_id="s0", title="down")
        db.write_sync(lambda c: repo.insert_incident(c, inc, "acme", T0))
        for hours, action in enumerate(actions, 1):
            inc = apply(inc, action, opened + dt.timedelta(hours=hours))
            db.write_sync(lambda c, inc=inc: repo.save_incident(c, inc, T0))

    # A plan that needs the customer's acceptance: resolved, then accepted.
    run_incident("INC-1", "premium-24x7", "P1", [Action.ACKNOWLEDGE, Action.RESOLVE, Action.ACCEPT])
    assert [e[:2] for e in _events(db)[start:]] == [
        ("incident.opened", "firing"),
        ("incident.resolved", "firing"),
        ("incident.opened", "resolved"),
        ("incident.accepted", "firing"),
    ]
    assert _events(db)[start][3] == "critical"
    # One that closes on resolving: no acceptance to announce.
    start = len(_events(db))
    run_incident("INC-2", "maintenance-support", "high", [Action.RESOLVE])
    assert [e[:2] for e in _events(db)[start:]] == [
        ("incident.opened", "firing"),
        ("incident.resolved", "firing"),
        ("incident.opened", "resolved"),
    ]
    db.close()


def test_sla_clocks_warn_at_50_and_75_percent_and_breach_once_each(tmp_path):
    db = make_db(tmp_path)
    opened = dt.datetime.fromtimestamp(T0, dt.UTC)
    inc = open_incident("INC-9", get_plan("premium-24x7"), "P1", opened, server_id="s0", title="x")
    db.write_sync(lambda c: repo.insert_incident(c, inc, "acme", T0))
    db.write_sync(
        lambda c: c.execute("UPDATE servers SET last_seen = ?, enrolled_at = ?", (T0, T0))
    )
    clock = Clock(T0)
    n = notifier(db, SecretBox(load_notify_key(tmp_path)), clock)

    async def sweep_for(hours):
        for _ in range(int(hours * 12)):
            clock.t += 300
            db.write_sync(lambda c: c.execute("UPDATE servers SET last_seen = ?", (clock.t,)))
            await n.sweep()

    asyncio.run(sweep_for(72))
    sla = [e[2] for e in _events(db) if e[0].startswith("sla.")]
    response = [k.split(":", 2)[2] for k in sla if ":response:" in k]
    assert response == ["response:50", "response:75", "response:breached"]
    assert len(sla) == len(set(sla))
    kinds = {e[2]: (e[0], e[3]) for e in _events(db)}
    assert kinds["sla:INC-9:response:breached"] == ("sla.breached", "critical")
    db.close()

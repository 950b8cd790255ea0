"""A warranty, a maintenance-support and an SMA server through February 2026 over real
sockets, one collector for the three (each plan under its own partner). The clock is the
test's: reports carry the simulated time they were collected at, stored backups and the
enrollment are dated in the collector's database, and the findings are judged through the
API at chosen instants. Each compares what the collector says with figures computed by
hand in the comments: the plan's own promises (warranty and SMA: heartbeat only, version
entitlement, SMA pricing; maintenance: daily backups kept 7, health incidents and their
response targets), the policy the agent receives before and after a contract change in
the middle of the month, and the monthly report.

Times are CET (+01:00) unless written otherwise; February 2026 has no DST change. The
contracts are chosen so that on the real day the test runs (late 2026) the coverage
that decides the agent's settings is the one named in the comments.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from agent.health.disks import disk_verdict
from harness.database import PrivatePostgres, collector_sql, own_database_env
from harness.net import http, wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for
from tests.health.test_disks import real

REPORTS = "/api/v1/agent/reports"
MODULES = ["analytics", "base", "lpr"]


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[Collector]:
    """One collector for the module; its own check run stays out of the way (once a day),
    so every finding below is the one asked for at a given instant. Entitlements are kept
    2 s, not a minute, so a contract change reaches the agent's settings within seconds."""
    folder = tmp_path_factory.mktemp("scenarios")
    cfg = folder / "collector.toml"
    cfg.write_text("[contracts]\ncheck_interval_s = 86400\nentitlement_cache_s = 2\n")
    releases = folder / "releases.csv"
    releases.write_text("product,version,released_on\nVMS,6.0,2025-11-01\nVMS,6.1,2026-02-10\n")
    prices = folder / "prices.csv"
    prices.write_text(
        "module,price\nbase,1000\nanalytics,500\nProfessional,1000\nEnterprise,2500\n"
    )
    c = Collector(folder / "data", config=cfg, env=own_database_env(postgres_server)).start()
    c.cli("releases", "import", str(releases))
    c.cli("prices", "import", str(prices))
    yield c
    c.stop()


class Scenario:
    """One partner's server on the shared collector: API calls and signed reports."""

    def __init__(self, collector: Collector, partner: str, make_agent: Any, licence: str):
        self.collector = collector
        self.key, token = collector.partner(partner)
        self.licence = licence
        self.agent = make_agent(name=f"agent-{partner}", extra_config=f'licence_id = "{licence}"\n')
        self.sid = ""
        self.token = token
        self.seq = 0
        self.session: tuple[str, bytes] | None = None

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)):
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        status, _, out = http(method, self.collector.url + path, data, headers)
        assert status in ok, out
        return json.loads(out)

    def contract(self, cid: str, **fields: Any) -> None:
        self.call("PUT", f"/api/v1/contracts/{cid}", {"customer": "C", **fields})

    def enroll(self, enrolled_at: str) -> None:
        self.sid = self.agent.enroll(self.collector.url, self.token)
        self.session = session_for(self.agent.state_dir, self.collector.url)
        self.db(
            lambda c: c.execute(
                "UPDATE servers SET enrolled_at = ? WHERE id = ?", (ts(enrolled_at), self.sid)
            )
        )

    def db(self, work: Any) -> None:
        with collector_sql(self.collector.data_dir, self.collector.env) as conn:
            work(conn)

    def store_backups(self, times: list[float]) -> None:
        rows = [(self.sid, i + 1, at) for i, at in enumerate(times)]
        self.db(
            lambda c: c.executemany(
                "INSERT INTO backup_stored_times (server_id, seq, stored_at) VALUES (?, ?, ?)", rows
            )
        )

    def send(self, when: str | None = None, **extra: Any) -> dict:
        """One report (collected at ``when``, simulated; now when None); the settings
        the acknowledgement carries."""
        assert self.session is not None
        self.seq += 1
        rep = report(self.seq, software={"product": "VMS", "version": "6.1", "modules": MODULES})
        if when is not None:
            rep["collected_at"] = ts(when)
        rep.update(extra)
        status, ack = post_signed(self.collector.url, self.session, REPORTS, batch(rep))
        assert status == 200, ack
        return ack["settings"]

    def settings_once_entitled(self) -> dict:
        """Reports until the acknowledgement offers online backup and health monitoring
        (entitlements are cached up to a minute): the policy the agent receives after a
        contract change."""
        seen: list[dict] = []

        def changed() -> bool:
            seen.append(self.send())
            return seen[-1]["backup_entitled"] and seen[-1]["monitoring_entitled"]

        wait_until(changed, 90, interval=2, what="online backup entitled")
        return seen[-1]

    def kinds_at(self, when: str) -> set[str]:
        at = when.replace("+", "%2B")
        body = self.call("GET", f"/api/v1/contract-findings?at={at}")
        return {f["kind"] for f in body["findings"] if f["server_id"] == self.sid}

    def finding_at(self, when: str, kind: str) -> dict:
        at = when.replace("+", "%2B")
        body = self.call("GET", f"/api/v1/contract-findings?at={at}")
        (f,) = [f for f in body["findings"] if f["server_id"] == self.sid and f["kind"] == kind]
        return f

    def incidents(self, kind: str) -> list[dict]:
        items = self.call("GET", "/api/v1/incidents")["incidents"]
        return [i for i in items if i["source"] == f"finding:{kind}" and i["server_id"] == self.sid]

    def manual_incident(self, contract: str, priority: str, opened: str, answered: str) -> dict:
        """An incident opened by hand at ``opened`` and acknowledged at ``answered``."""
        body = {
            "contract_id": contract,
            "priority": priority,
            "server_id": self.sid,
            "title": "no recording on camera 3",
            "opened_at": opened,
        }
        inc = self.call("POST", "/api/v1/incidents", body)
        return self.call("POST", f"/api/v1/incidents/{inc['id']}/acknowledge", {"at": answered})

    def month(self) -> dict:
        (row,) = self.call("GET", "/api/v1/reports/monthly?month=2026-02&by=customer")["rows"]
        return row


def camera(verdict: str) -> list[dict]:
    reasons = [] if verdict == "ok" else ["no answer on port 80"]
    return [{"key": "cam-1", "address": "10.0.0.5", "verdict": verdict, "reasons": reasons}]


def disks(state: str) -> list[dict]:
    """Disks as the agent reports them, from recorded ``smartctl --json`` outputs of real
    disks: a healthy WD (/dev/sdb) and a Seagate (/dev/sda) whose reallocated sectors
    number 120 when first read (``"worn"``: a warning), then the 304 of its recording
    (``"failing"``: grown); ``"replaced"``: the Seagate swapped for a second healthy WD."""
    at = ts("2026-02-05T09:00+01:00")
    healthy = disk_verdict(real("WDC_WD20EFRX-68EUZN0_17"), "/dev/sdb", at)
    seagate = real("ST3500418AS_12")
    if state == "worn":
        for attr in seagate["ata_smart_attributes"]["table"]:
            if attr["id"] == 5:
                attr["raw"]["value"] = 120
        second = disk_verdict(seagate, "/dev/sda", at, {5: 120})
    elif state == "failing":
        second = disk_verdict(seagate, "/dev/sda", at, {5: 120})
    else:
        second = disk_verdict(real("WDC_WD20EFRX-68EUZN0_17"), "/dev/sda", at)
    return [msgspec.to_builtins(d) for d in (healthy, second)]


def heartbeat_only(s: Scenario) -> None:
    """A camera going down and back and a disk going bad on a server without health
    monitoring: the collector keeps the software (for the checks) and nothing else, and
    opens no incident."""
    s.send("2026-02-05T10:00+01:00", cameras=camera("ok"), disks=disks("worn"))
    s.send("2026-02-05T11:00+01:00", cameras=camera("unreachable"), disks=disks("failing"))
    s.send("2026-02-05T15:00+01:00", cameras=camera("ok"), disks=disks("replaced"))
    view = s.call("GET", f"/api/v1/servers/{s.sid}")
    assert view["status"] == "unmonitored"
    assert not view.get("disks") and not view.get("volumes")
    assert s.call("GET", f"/api/v1/servers/{s.sid}/cameras")["cameras"] == []
    assert s.incidents("camera_offline") == [] and s.incidents("disk_failing") == []


# --- warranty, then maintenance from the 16th -----------------------------------------------


def test_warranty_then_maintenance_from_the_16th(shared: Collector, make_agent: Any) -> None:
    s = Scenario(shared, "bakery", make_agent, "LW")
    # Installed 20 Jan 2026: 90 days, covered through 19 April. No backup, no monitoring,
    # no free upgrades.
    s.contract("W-1", plan="warranty", licence_ids=["LW"], installed_on="2026-01-20")
    s.enroll("2026-02-02T09:00+01:00")
    settings = s.send()
    assert settings["backup_entitled"] is False
    heartbeat_only(s)
    # The heartbeat keeps product, version and modules: version entitlement works.
    view = s.call("GET", f"/api/v1/servers/{s.sid}")
    assert view["software"]["version"] == "6.1"
    # 12 Feb: 6.1 (released 10 Feb) came after the installation (20 Jan), and a warranty
    # has no free upgrades -> not covered, covered until the anchor.
    f = s.finding_at("2026-02-12T12:00+01:00", "version_not_covered")
    assert f["evidence"]["covered_until"] == "2026-01-20"

    # A high case on Fri 13 Feb 16:00: the warranty answers by the next working day's
    # closing, Mon 16 Feb 17:00; answered 18:00, after closing -> missed.
    inc = s.manual_incident("W-1", "high", "2026-02-13T16:00+01:00", "2026-02-16T18:00+01:00")
    assert inc["response"]["due"].startswith("2026-02-16T17:00")
    assert inc["response"]["status"] == "missed" and inc["resolution"]["status"] == "none"

    # The customer buys Maintenance & Support from 16 Feb (12 months, to 15 Feb 2027):
    # the agent's next reports (once the cached entitlement expires) carry the daily backup.
    s.contract("M-1", plan="maintenance-support", licence_ids=["LW"], start="2026-02-16")
    settings = s.settings_once_entitled()
    assert settings["backup_interval_s"] == 86400
    # Backups stored daily at 12:00 from 16 to 28 Feb, except 20 and 21 Feb.
    days = [d for d in range(16, 29) if d not in (20, 21)]
    s.store_backups([ts(f"2026-02-{d:02d}T12:00+01:00") for d in days])
    # Before the 16th the warranty still counts (6.1 not covered); from then on the
    # maintenance's free upgrades cover it.
    assert "version_not_covered" in s.kinds_at("2026-02-12T12:00+01:00")
    assert "version_not_covered" not in s.kinds_at("2026-02-20T12:00+01:00")
    # 21 Feb 12:00: last backup 19 Feb 12:00 + 24 h + 6 h = 20 Feb 18:00 passed.
    overdue = s.finding_at("2026-02-21T12:00+01:00", "backup_overdue")
    # Overdue since the interval ended: 21 Feb 12:00 - (19 Feb 12:00 + 24 h) = 24 h.
    assert overdue["evidence"]["overdue_s"] == 24 * 3600
    assert "backup_overdue" not in s.kinds_at("2026-02-22T13:00+01:00")

    row = s.month()
    (server,) = row["server_details"]
    # From enrollment (2 Feb) to 28 Feb: 27 days, all active (warranty, then maintenance).
    # Backup slots only under the maintenance, daily from 16 Feb 00:00; a slot counts
    # when its end + 6 h falls by 1 Mar 00:00: starts 16..27 Feb = 12. Slot [D 00:00,
    # D+1 06:00) is met by D's 12:00 backup: all but 20 and 21 Feb -> 10.
    assert server["contract_id"] == "M-1"
    assert (server["counted_from"], server["days_active"], server["days_uncovered"]) == (
        "2026-02-02",
        27,
        0,
    )
    assert (server["backup_slots_met"], server["backup_slots_total"]) == (10, 12)
    assert (row["incidents"], row["response_met"], row["response_total"]) == (1, 0, 1)
    (detail,) = row["incident_details"]
    assert detail["response"]["reason"] == (
        "answered 2026-02-16 18:00 CET, due 2026-02-16 17:00 CET (next working day)"
    )


# --- maintenance & support: grace, then a renewal entered mid-month ----------------------


def test_maintenance_support_through_february(shared: Collector, make_agent: Any) -> None:
    s = Scenario(shared, "museum", make_agent, "LM")
    # From 16 Feb 2025, 12 months: covered through 15 Feb 2026, then 30 days of grace
    # (to 17 March). On the day the test runs the contract has expired.
    s.contract("M-2", plan="maintenance-support", licence_ids=["LM"], start="2025-02-16")
    s.enroll("2026-02-02T09:00+01:00")
    settings = s.send()
    assert settings["backup_entitled"] is False
    assert s.kinds_at("2026-02-20T12:00+01:00") >= {"coverage_grace"}
    # Report of February before the renewal: active 2..15 Feb (14 days), grace 16..28 (13).
    (server,) = s.month()["server_details"]
    assert (server["days_active"], server["days_grace"]) == (14, 13)

    # On the 16th the renewal agreed before the end is entered: 12 more months.
    s.contract(
        "M-2",
        plan="maintenance-support",
        licence_ids=["LM"],
        start="2025-02-16",
        renewals=[12],
    )
    settings = s.settings_once_entitled()
    assert settings["backup_interval_s"] == 86400
    policy = json.loads(s.collector.cli("backup", "policy", "show", "--server", s.sid, "--json"))
    # The built-in default keeps the last 3; the contract promises 7 (daily 7, weekly 4,
    # monthly 12), so that is what the server runs.
    assert (policy["interval_s"], policy["keep_last"]) == (86400, 7)
    assert (policy["keep_daily"], policy["keep_weekly"], policy["keep_monthly"]) == (7, 4, 12)
    assert policy["promise"] == "contract M-2 (Maintenance & Support)"
    assert "coverage_grace" not in s.kinds_at("2026-02-20T12:00+01:00")

    # Backups daily at 02:00 from 3 to 28 Feb, except 10, 11 and 12 Feb.
    s.store_backups(
        [ts(f"2026-02-{d:02d}T02:00+01:00") for d in range(3, 29) if d not in (10, 11, 12)]
    )
    # 11 Feb 12:00: last backup 9 Feb 02:00, due by 9 Feb 02:00 + 24 h + 6 h = 10 Feb
    # 08:00 -> overdue; 13 Feb 12:00: the 13 Feb backup is there.
    assert "backup_overdue" in s.kinds_at("2026-02-11T12:00+01:00")
    assert "backup_overdue" not in s.kinds_at("2026-02-13T12:00+01:00")

    # A camera goes down Thu 5 Feb 11:00 and is back at 15:00: a medium incident (8
    # business hours: due Fri 6 Feb 11:00), answered by the camera's return.
    s.send("2026-02-05T10:00+01:00", cameras=camera("ok"), disks=disks("worn"))
    s.send("2026-02-05T11:00+01:00", cameras=camera("unreachable"))
    (cam,) = s.incidents("camera_offline")
    assert cam["priority"] == "medium" and cam["response"]["due"].startswith("2026-02-06T11:00")
    s.send("2026-02-05T15:00+01:00", cameras=camera("ok"))
    (cam,) = s.incidents("camera_offline")
    assert cam["state"] == "resolved" and cam["awaiting_acceptance"] is True
    assert cam["response"]["status"] == "met"

    # A disk goes bad Wed 18 Feb 10:00 (its reallocated sectors grew from 120 to 304
    # since the agent first read it): a high incident (4 business hours: due 14:00),
    # acknowledged 13:00; the replaced disk passes on Thu 19 Feb 09:00.
    s.send("2026-02-18T10:00+01:00", disks=disks("failing"))
    (disk,) = s.incidents("disk_failing")
    assert disk["priority"] == "high" and disk["response"]["due"].startswith("2026-02-18T14:00")
    assert "/dev/sda (ST3500418AS)" in disk["title"]
    assert "Reallocated_Sector_Ct grew from 120 to 304" in disk["title"]
    s.call("POST", f"/api/v1/incidents/{disk['id']}/acknowledge", {"at": "2026-02-18T13:00+01:00"})
    s.send("2026-02-19T09:00+01:00", disks=disks("replaced"))
    (disk,) = s.incidents("disk_failing")
    assert disk["state"] == "resolved" and disk["response"]["status"] == "met"

    row = s.month()
    (server,) = row["server_details"]
    # From enrollment: 27 days, all active after the renewal. Daily slots from 2 Feb
    # 09:00; counted while start + 30 h <= 1 Mar 00:00: 2..27 Feb = 26. Slot [D 09:00,
    # D+1 15:00) is met by D+1's 02:00 backup: missed for D+1 = 10, 11, 12 -> 23.
    assert (server["counted_from"], server["days_active"], server["days_grace"]) == (
        "2026-02-02",
        27,
        0,
    )
    assert (server["backup_slots_met"], server["backup_slots_total"]) == (23, 26)
    # Two incidents, both answered in time; Maintenance & Support has no resolution target.
    assert (row["incidents"], row["response_met"], row["response_total"]) == (2, 2, 2)
    assert row["resolution_total"] == 0
    kept = {i["title"].split(":")[0]: i["response"]["kept"] for i in row["incident_details"]}
    assert kept == {"camera down": True, "disk failing": True}


# --- SMA: pricing, and a cancellation received mid-month --------------------------------------


def test_sma_through_february(shared: Collector, make_agent: Any) -> None:
    s = Scenario(shared, "shop", make_agent, "LS")
    # From 1 June 2025, renewing by 12 months, 90 days' notice: the first period ends 31
    # May 2026 and the last day to cancel it is 31 May - 90 days = 2 March 2026.
    s.contract("S-1", plan="sma", licence_ids=["LS"], start="2025-06-01")
    s.enroll("2026-02-02T09:00+01:00")
    settings = s.send()
    assert settings["backup_entitled"] is False
    heartbeat_only(s)
    # Modules in use: analytics (500), base (1000), lpr (no list price). Year 1: 19 % of
    # 1500 = 285.00; year 2: 17 % = 255.00; bought later: 23.75 % = 356.25.
    quote = json.loads(s.collector.cli("sma", "quote", "--server", s.sid, "--json"))
    assert (quote["list_total"], quote["price"], quote["unknown_modules"]) == (
        "1500.00",
        "285.00",
        ["lpr"],
    )
    assert s.call("GET", f"/api/v1/servers/{s.sid}/sma-quote?year=2")["price"] == "255.00"
    later = json.loads(
        s.collector.cli("sma", "quote", "--server", s.sid, "--bought-later", "--json")
    )
    assert later["price"] == "356.25"
    # In force today (second period, June 2026 to May 2027): the old edition is credited.
    up = s.call("GET", f"/api/v1/servers/{s.sid}/sma-upgrade?from=Professional&to=Enterprise")
    assert (up["sma_active"], up["price"]) == (True, "1500.00")
    # 6.1 (released 10 Feb) is covered: SMA buys the upgrades.
    assert "version_not_covered" not in s.kinds_at("2026-02-20T12:00+01:00")
    # 20 Feb: the last day to cancel (2 March) is 10 days away.
    deadline = s.finding_at("2026-02-20T12:00+01:00", "cancel_deadline")
    assert deadline["evidence"]["last_day_to_cancel"] == "2026-03-02"
    assert deadline["evidence"]["renews_on"] == "2026-06-01"

    # A medium case on Wed 4 Feb 10:00: 2 working days, due Fri 6 Feb 10:00 (SMA answers
    # as the warranty does); answered Thu 5 Feb 09:30 -> met.
    inc = s.manual_incident("S-1", "medium", "2026-02-04T10:00+01:00", "2026-02-05T09:30+01:00")
    assert inc["response"]["due"].startswith("2026-02-06T10:00")
    assert inc["response"]["status"] == "met"

    # The customer's cancellation, received 16 Feb (in time), is entered: the agreement
    # ends with 31 May 2026. Today it is over, so an edition upgrade gets no credit.
    s.contract("S-1", plan="sma", licence_ids=["LS"], start="2025-06-01", cancelled_on="2026-02-16")
    assert "cancel_deadline" not in s.kinds_at("2026-02-20T12:00+01:00")
    # 10 May: 1 June - 10 May = 22 days left.
    expiring = s.finding_at("2026-05-10T12:00+02:00", "expiring_30d")
    assert expiring["evidence"]["days_left"] == 22
    assert "coverage_cancelled" in s.kinds_at("2026-06-02T12:00+02:00")
    up = s.call("GET", f"/api/v1/servers/{s.sid}/sma-upgrade?from=Professional&to=Enterprise")
    assert (up["sma_active"], up["price"]) == (False, "2500.00")

    row = s.month()
    (server,) = row["server_details"]
    # 2..28 Feb active (the cancellation takes effect on 1 June); SMA has no backups.
    assert (server["counted_from"], server["days_active"], server["days_uncovered"]) == (
        "2026-02-02",
        27,
        0,
    )
    assert (server["backup_slots_met"], server["backup_slots_total"]) == (0, 0)
    # One entitlement finding at the month's end: the agent sends health reports, which
    # SMA does not include (the collector keeps only the heartbeat).
    assert row["entitlement_findings"] == 1
    assert (row["incidents"], row["response_met"], row["response_total"]) == (1, 1, 1)
    assert "health_monitoring_not_entitled" in s.kinds_at("2026-02-28T23:59+01:00")

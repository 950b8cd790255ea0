"""A server under each of the four presets through its life, at the pure-function level.

Each scenario evaluates the checks on given days and lists the findings expected that day,
with the reason in the comment. Times are Europe/Berlin unless written otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from collector.contracts.checks import ServerFacts, SupportCase, check_server, evaluate
from collector.contracts.terms import Contract, ContractVersion, Renewal, version_at

D = dt.date.fromisoformat


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def kinds(findings: list) -> set[str]:
    return {f.kind for f in findings}


def by_kind(findings: list, kind: str):
    (f,) = [f for f in findings if f.kind == kind]
    return f


RELEASES = {
    ("VMS", "6.0"): D("2025-11-01"),
    ("VMS", "6.1"): D("2026-03-01"),
    ("VMS", "6.2"): D("2026-03-10"),
}


def every(start: str, end: str, hours: float) -> list[float]:
    """Backup times every ``hours`` from ``start`` up to ``end`` (exclusive)."""
    t, stop, out = ts(start), ts(end), []
    while t < stop:
        out.append(t)
        t += hours * 3600
    return out


# --- warranty ------------------------------------------------------------------------------


def test_warranty_life() -> None:
    c = Contract(
        id="W1",
        customer="Bakery",
        partner="p1",
        plan="warranty",
        licence_ids=("L-W",),
    )
    server = ServerFacts(
        server_id="s-w",
        licence_id="L-W",
        installed_on=D("2026-01-15"),
        machine_id="m1",
        licensed_machine_id="m1",
        uses_monitoring=True,
        last_seen=ts("2026-01-20T11:59+01:00"),
        product="VMS",
        version="6.0",
    )
    # Day 5 after installation: active (90 days end 15 April exclusive, see test_terms);
    # 85 days left so no expiry warning; the agent sends health reports, which warranty
    # does not include -> health_monitoring_not_entitled; 6.0 was released before
    # installation -> covered.
    f = check_server(server, [c], ts("2026-01-20T12:00+01:00"), releases=RELEASES)
    assert kinds(f) == {"health_monitoring_not_entitled"}
    # 14 Feb: 15 April - 14 Feb = 14 (rest of Feb) + 31 + 15 = 60 days -> expiring_60d.
    f = check_server(server, [c], ts("2026-02-14T12:00+01:00"), releases=RELEASES)
    assert kinds(f) == {"health_monitoring_not_entitled", "expiring_60d"}
    assert by_kind(f, "expiring_60d").evidence["days_left"] == 60
    # 14 April, the last covered day: 1 day left -> expiring_7d (high). The server was
    # updated to 6.1 (released 1 March, after installation; warranty has no free upgrades).
    upgraded = dataclasses.replace(server, version="6.1", uses_backup=True)
    f = check_server(upgraded, [c], ts("2026-04-14T12:00+02:00"), releases=RELEASES)
    assert kinds(f) == {
        "health_monitoring_not_entitled",
        "online_backup_not_entitled",
        "expiring_7d",
        "version_not_covered",
    }
    assert by_kind(f, "expiring_7d").severity == "high"
    assert by_kind(f, "version_not_covered").evidence["covered_until"] == "2026-01-15"
    # 15 April: expired (warranty has no grace period).
    f = check_server(server, [c], ts("2026-04-15T09:00+02:00"), releases=RELEASES)
    assert "coverage_expired" in kinds(f)
    # Two support cases in the first 90 days: the second is over the limit of 1.
    cases = [
        SupportCase("case-1", "W1", ts("2026-01-22T10:00+01:00")),
        SupportCase("case-2", "W1", ts("2026-03-02T10:00+01:00")),
    ]
    f = evaluate([server], [c], ts("2026-03-03T10:00+01:00"), cases=cases)
    over = by_kind(f, "support_cases_over_limit")
    assert over.evidence["over_limit"] == ["case-2"]
    # Renewal: the customer buys Maintenance & Support from 20 April -> active again,
    # monitoring now entitled, 6.1 covered by free upgrades.
    ms = Contract(
        id="M1",
        customer="Bakery",
        partner="p1",
        plan="maintenance-support",
        licence_ids=("L-W",),
        start=D("2026-04-20"),
    )
    fresh = dataclasses.replace(upgraded, uses_backup=False, last_seen=ts("2026-04-20T19:59+02:00"))
    f = check_server(fresh, [c, ms], ts("2026-04-20T20:00+02:00"), releases=RELEASES)
    # Backups: covered since 20 April 00:00; the first backup is due by the end of the
    # first daily slot plus 6 h tolerance = 21 April 06:00 -> nothing overdue at 20:00.
    assert kinds(f) == set()
    # Next morning at 10:00 still no backup: 21 April 06:00 has passed -> backup_overdue
    # by 10 h past the 1-day interval (00:00 + 24 h = 21 April 00:00; 10:00 - 00:00).
    f = check_server(fresh, [c, ms], ts("2026-04-21T10:00+02:00"), releases=RELEASES)
    assert by_kind(f, "backup_overdue").evidence["overdue_s"] == 10 * 3600


# --- maintenance & support ------------------------------------------------------------------


def test_maintenance_support_life_with_backdated_renewal() -> None:
    v1 = Contract(
        id="M2",
        customer="Museum",
        partner="p1",
        plan="maintenance-support",
        licence_ids=("L-M",),
        start=D("2025-06-01"),
    )
    backups = every("2025-06-01T02:00+02:00", "2026-08-01T00:00+02:00", 24)
    server = ServerFacts(
        server_id="s-m",
        licence_id="L-M",
        machine_id="m2",
        licensed_machine_id="m1",
        uses_monitoring=True,
        uses_backup=True,
        backups=backups,
        kept_backups=None,
        product="VMS",
        version="6.0",
    )

    def at(when: str, contract: Contract, last_seen_ago: float = 60) -> list:
        now = ts(when)
        s = dataclasses.replace(
            server,
            last_seen=now - last_seen_ago,
            backups=[b for b in server.backups if b <= now],
        )
        return check_server(s, [contract], now, releases=RELEASES)

    # 10 May 2026: 1 June - 10 May = 22 days -> expiring_30d. Hardware changed (m1 -> m2)
    # but licence transfer is included; daily backups on time.
    f = at("2026-05-10T12:00+02:00", v1)
    assert kinds(f) == {"expiring_30d"}
    # 10 June: the term ended 1 June, 30 days grace -> coverage_grace; still monitored.
    # The server has been silent 20 minutes (> 15 min health policy) -> silent (high).
    f = at("2026-06-10T12:00+02:00", v1, last_seen_ago=20 * 60)
    assert kinds(f) == {"coverage_grace", "silent"}
    assert by_kind(f, "silent").severity == "high"
    # 5 July: grace over (1 July) -> expired; reports and backups are no longer entitled,
    # and the licence moved hardware without a transfer entitlement in force.
    f = at("2026-07-05T12:00+02:00", v1)
    assert kinds(f) == {
        "coverage_expired",
        "health_monitoring_not_entitled",
        "online_backup_not_entitled",
        "licence_transfer_not_entitled",
    }
    # 6 July the renewal agreed on 30 May is entered (backdated): re-evaluating the same
    # days with the current record clears the findings of 10 June and 5 July.
    history = [
        ContractVersion(dt.datetime(2025, 5, 20, tzinfo=dt.UTC), v1),
        ContractVersion(
            dt.datetime(2026, 7, 6, 9, tzinfo=dt.UTC),
            dataclasses.replace(v1, renewals=(Renewal(12, D("2026-05-30")),)),
        ),
    ]
    current = version_at(history, dt.datetime(2026, 7, 7, tzinfo=dt.UTC))
    assert current is not None
    assert kinds(at("2026-06-10T12:00+02:00", current)) == set()
    assert kinds(at("2026-07-05T12:00+02:00", current)) == set()
    # Cancellation: the partner terminates the renewed contract early, ending 1 Aug 2026.
    cancelled = dataclasses.replace(current, cancelled_on=D("2026-07-15"), ends_on=D("2026-08-01"))
    f = at("2026-08-02T12:00+02:00", cancelled)
    assert "coverage_cancelled" in kinds(f)
    assert "coverage_grace" not in kinds(f)  # no grace after a cancellation


def test_maintenance_backups_overdue_compliance_and_retention() -> None:
    c = Contract(
        id="M3",
        customer="School",
        partner="p1",
        plan="maintenance-support",
        licence_ids=("L-B",),
        start=D("2026-01-01"),
    )
    # Daily backups at 02:00 CET from 1 Jan to 31 Jan, then none in February until the
    # 10th -> at 10 Feb 12:00 the last is 31 Jan 02:00: 10 d 10 h ago; overdue by
    # 9 d 10 h beyond the 1-day interval (> 3 intervals -> high).
    backups = every("2026-01-01T02:00+01:00", "2026-02-01T00:00+01:00", 24)
    kept = backups[-3:]  # the store kept only the last three
    s = ServerFacts(
        server_id="s-b",
        licence_id="L-B",
        uses_monitoring=True,
        uses_backup=True,
        last_seen=ts("2026-02-10T11:59+01:00"),
        backups=backups,
        kept_backups=kept,
    )
    f = check_server(s, [c], ts("2026-02-10T12:00+01:00"))
    assert kinds(f) == {"backup_overdue", "backup_compliance_low", "retention_below_promise"}
    overdue = by_kind(f, "backup_overdue")
    assert overdue.severity == "high"
    assert overdue.evidence["overdue_s"] == (9 * 24 + 10) * 3600
    # Slots: the window is the last 30 days, 11 Jan 12:00 to 10 Feb 12:00; a slot counts
    # once it ended plus 6 h tolerance, so slots starting 11 Jan 12:00 .. 8 Feb 12:00
    # count = 29 (the 9 Feb one ends 10 Feb 18:00). The slot starting day D 12:00 is met
    # by the backup of D+1 02:00: true for D = 11..30 Jan (backups run to 31 Jan) = 20.
    comp = by_kind(f, "backup_compliance_low")
    assert (comp.evidence["met"], comp.evidence["total"]) == (20, 29)
    # Retention promise: keep_last 7, daily 7 -> 28..31 Jan kept? Only 29, 30, 31 Jan are
    # kept; the 7 most recent backup days are 25..31 Jan -> 25..28 Jan missing.
    ret = by_kind(f, "retention_below_promise")
    assert ret.evidence["missing"]["daily"] == [
        "2026-01-28",
        "2026-01-27",
        "2026-01-26",
        "2026-01-25",
    ]


# --- software maintenance agreement ---------------------------------------------------------


def test_sma_life_auto_renewal_and_late_cancellation() -> None:
    c = Contract(
        id="S1",
        customer="Shop",
        partner="p2",
        plan="sma",
        licence_ids=("L-S",),
        start=D("2024-02-29"),
    )
    server = ServerFacts(server_id="s-s", licence_id="L-S", product="VMS", version="6.0")
    # 15 Oct 2024: last day to cancel for the period ending 28 Feb 2025 is 30 Nov 2024
    # (see test_terms), 46 days away (16 left in October + 30 in November) -> within the
    # 60-day horizon -> cancel_deadline (info) naming the renewal on 1 March 2025.
    f = check_server(server, [c], ts("2024-10-15T12:00+02:00"))
    assert kinds(f) == {"cancel_deadline"}
    ev = by_kind(f, "cancel_deadline").evidence
    assert ev["last_day_to_cancel"] == "2024-11-30"
    assert ev["renews_on"] == "2025-03-01"
    assert ev["days_to_deadline"] == 46
    # 1 Sept 2024: deadline 90 days away (> 60) -> nothing.
    assert kinds(check_server(server, [c], ts("2024-09-01T12:00+02:00"))) == set()
    # Renewed automatically: 1 March 2025 is active without any new record.
    assert kinds(check_server(server, [c], ts("2025-03-01T12:00+01:00"))) == set()
    # Cancellation received 5 Dec 2024, after the deadline: runs until 1 March 2026.
    late = dataclasses.replace(c, cancelled_on=D("2024-12-05"))
    # 25 Feb 2026: 1 March - 25 Feb = 4 days left -> expiring_7d.
    f = check_server(server, [late], ts("2026-02-25T12:00+01:00"))
    assert kinds(f) == {"expiring_7d"}
    # 15 March 2026 on 6.2 (released 10 March, after the last covered day 28 Feb):
    # cancelled and not covered; SMA has no monitoring, the server sends reports.
    s2 = dataclasses.replace(server, version="6.2", uses_monitoring=True)
    f = check_server(s2, [late], ts("2026-03-15T12:00+01:00"), releases=RELEASES)
    assert kinds(f) == {
        "coverage_cancelled",
        "version_not_covered",
        "health_monitoring_not_entitled",
    }
    assert by_kind(f, "version_not_covered").evidence["covered_until"] == "2026-02-28"


# --- premium 24x7 ---------------------------------------------------------------------------


def test_premium_life() -> None:
    c = Contract(
        id="P1",
        customer="Airport",
        partner="p3",
        plan="premium-24x7",
        licence_ids=("L-P",),
        start=D("2026-01-01"),
    )
    # Backups every 6 h at 00/06/12/18 UTC from 1 Jan, stopping after 9 Mar 18:00 UTC.
    backups = every("2026-01-01T00:00+00:00", "2026-03-09T18:00:01+00:00", 6)
    server = ServerFacts(
        server_id="s-p",
        licence_id="L-P",
        machine_id="new",
        licensed_machine_id="old",
        uses_monitoring=True,
        uses_backup=True,
        backups=backups,
        last_seen=ts("2026-03-10T11:50+00:00"),
        product="VMS",
        version="6.1",
    )
    # 10 Mar 12:00 UTC: silent for 10 min (> 5 min premium policy) -> critical; last
    # backup 18 h ago: overdue by 12 h beyond the 6 h interval (< 3 intervals -> warning).
    # Slot share: 120 slots in 30 days would end by 10 Mar 12:00 only if slot end + 2 h
    # tolerance <= now: slots start every 6 h from 8 Feb 12:00 UTC, the last counted one
    # starts 10 Mar 00:00 (ends 06:00 + 2 h = 08:00) -> 119 slots; the 9 Mar 18:00 slot
    # is met by its own 18:00 backup; slots from 10 Mar 00:00 on (1 of them) are not ->
    # 118/119, well above 90% -> no compliance finding. Hardware changed, but licence
    # transfer is included -> nothing.
    f = check_server(server, [c], ts("2026-03-10T12:00+00:00"), releases=RELEASES)
    assert kinds(f) == {"silent", "backup_overdue"}
    assert by_kind(f, "silent").severity == "critical"
    assert by_kind(f, "backup_overdue").severity == "warning"
    assert by_kind(f, "backup_overdue").evidence["overdue_s"] == 12 * 3600
    # Cancelled by agreement, ending 1 July: on 2 July cancelled and nothing is entitled.
    ended = dataclasses.replace(c, cancelled_on=D("2026-06-01"), ends_on=D("2026-07-01"))
    quiet = dataclasses.replace(server, uses_backup=False, last_seen=ts("2026-07-02T11:59+00:00"))
    f = check_server(quiet, [ended], ts("2026-07-02T12:00+00:00"))
    assert kinds(f) == {
        "coverage_cancelled",
        "health_monitoring_not_entitled",
        "licence_transfer_not_entitled",
    }
    # Renewal instead: 12 more months -> active on 2 July 2026, nothing to report.
    # (Backups resumed after March and ran every 6 h up to 2 July 12:00 UTC.)
    renewed = dataclasses.replace(c, renewals=(Renewal(12),))
    busy = dataclasses.replace(
        quiet,
        uses_backup=True,
        backups=every("2026-03-11T00:00+00:00", "2026-07-02T12:00:01+00:00", 6),
    )
    assert kinds(check_server(busy, [renewed], ts("2026-07-02T12:00+00:00"))) == set()


def test_a_partner_without_any_contract_is_told_to_import_them_and_nothing_is_refused() -> None:
    # The contract engine is not in use for a partner with no contract on record: its
    # servers are entitled to everything (their uploads are accepted), so the check says
    # what is missing and refuses nothing; once the partner has contracts, an uncovered
    # server's backups are refused and said so.
    now = ts("2026-06-01T12:00:00+02:00")
    server = ServerFacts("s1", "L1", uses_monitoring=True, uses_backup=True)
    alone = evaluate([server], [], now)
    assert kinds(alone) == {"no_contract"}
    assert "nothing is refused" in by_kind(alone, "no_contract").message
    other = Contract(
        id="C-2", customer="Depot", partner="p1", plan="maintenance-support", licence_ids=("L2",)
    )
    among = evaluate([server], [other], now)
    assert kinds(among) == {"no_contract", "online_backup_not_entitled"}
    assert "uploads are refused" in by_kind(among, "online_backup_not_entitled").message

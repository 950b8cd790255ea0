"""Retention: restic ``forget`` semantics (its documented examples) plus Vigil's guarantees."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from collector.backups.retention import RetentionPolicy, Snapshot, plan_retention

UTC = dt.UTC


def ts(text: str, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def snaps(times: list[float]) -> list[Snapshot]:
    return [Snapshot(id=f"s{i + 1}", seq=i + 1, created_at=t) for i, t in enumerate(times)]


def kept_ids(plan) -> set[str]:
    return {s.id for s in plan.keep}


def test_restic_doc_example_sundays_keep_daily_4() -> None:
    """restic docs: one backup every Sunday for 12 weeks; ``--keep-daily 4`` keeps the
    last four Sundays and removes the other eight."""
    sundays = [
        "2019-09-01",
        "2019-09-08",
        "2019-09-15",
        "2019-09-22",
        "2019-09-29",
        "2019-10-06",
        "2019-10-13",
        "2019-10-20",
        "2019-10-27",
        "2019-11-03",
        "2019-11-10",
        "2019-11-17",
    ]
    s = snaps([ts(f"{d} 11:00:00") for d in sundays])
    plan = plan_retention(s, RetentionPolicy(keep_daily=4))
    assert kept_ids(plan) == {"s9", "s10", "s11", "s12"}
    assert len(plan.remove) == 8
    assert all(plan.reasons[i] == ["daily snapshot"] for i in kept_ids(plan) - {"s12"})


def test_restic_doc_example_daily_backups_years() -> None:
    """restic docs: daily backups for years, ``--keep-daily 7 --keep-weekly 5
    --keep-monthly 12 --keep-yearly 75`` keeps 7 dailies, 4 more week-ends (the dailies
    include one), 12 or 11 month-ends, and 75 or 74 year-ends."""
    start = dt.datetime(1950, 1, 1, 3, 0, tzinfo=UTC)
    days = (dt.datetime(2025, 6, 15, 3, 0, tzinfo=UTC) - start).days + 1  # newest: a Sunday
    s = snaps([(start + dt.timedelta(days=i)).timestamp() for i in range(days)])
    plan = plan_retention(
        s, RetentionPolicy(keep_daily=7, keep_weekly=5, keep_monthly=12, keep_yearly=75)
    )
    reasons = Counter(r for rs in plan.reasons.values() for r in rs)
    assert reasons["daily snapshot"] == 7
    assert reasons["weekly snapshot"] == 5
    assert reasons["monthly snapshot"] == 12
    assert reasons["yearly snapshot"] == 75
    only = Counter(tuple(sorted(rs)) for rs in plan.reasons.values())
    weekly_only = only[("weekly snapshot",)]
    assert weekly_only == 4  # "4 last-day-of-the-week ones (since the 7 dailies include 1)"
    monthly_new = sum(
        1
        for rs in plan.reasons.values()
        if "monthly snapshot" in rs and not {"daily snapshot", "weekly snapshot"} & set(rs)
    )
    assert monthly_new in (11, 12)
    by_id = {x.id: x for x in s}
    years = {
        dt.datetime.fromtimestamp(by_id[i].created_at, UTC).year
        for i, rs in plan.reasons.items()
        if "yearly snapshot" in rs
    }
    assert years == set(range(1951, 2026))
    # the kept ones are the last day of their week / month / year
    for sid, rs in plan.reasons.items():
        t = dt.datetime.fromtimestamp(by_id[sid].created_at, UTC)
        if rs == ["weekly snapshot"]:
            assert t.weekday() == 6
        if rs == ["yearly snapshot"]:
            assert (t.month, t.day) == (12, 31)
    assert len(plan.keep) + len(plan.remove) == days


def test_keep_last_and_rules_are_ored() -> None:
    s = snaps([ts(f"2024-03-{d:02d} 10:00:00") for d in range(1, 11)])
    plan = plan_retention(s, RetentionPolicy(keep_last=3, keep_weekly=2))
    # last 3: Mar 8, 9, 10; weekly: newest of ISO week 10 (Mar 10, a Sunday) and week 9 (Mar 3)
    assert kept_ids(plan) == {"s8", "s9", "s10", "s3"}


def test_period_keeps_newest_in_period() -> None:
    times = [
        ts("2024-05-01 01:00:00"),
        ts("2024-05-01 09:00:00"),
        ts("2024-05-01 23:00:00"),
        ts("2024-05-02 08:00:00"),
    ]
    plan = plan_retention(snaps(times), RetentionPolicy(keep_daily=2))
    assert kept_ids(plan) == {"s3", "s4"}


def test_oldest_kept_when_fewer_periods_than_asked() -> None:
    """restic >= 0.17: not enough periods for a rule keeps the oldest snapshot as well."""
    times = [ts("2024-05-01 01:00:00"), ts("2024-05-01 09:00:00"), ts("2024-05-01 23:00:00")]
    plan = plan_retention(snaps(times), RetentionPolicy(keep_daily=7))
    assert kept_ids(plan) == {"s1", "s3"}
    assert plan.reasons["s1"] == ["oldest daily snapshot"]


def test_days_in_the_given_time_zone() -> None:
    times = [ts("2024-05-01 21:30:00"), ts("2024-05-01 22:30:00")]
    # UTC: both on May 1 -> one daily; Berlin (UTC+2): May 1 23:30 and May 2 00:30 -> two
    assert kept_ids(plan_retention(snaps(times), RetentionPolicy(keep_daily=2))) == {"s1", "s2"}
    utc_plan = plan_retention(snaps(times), RetentionPolicy(keep_daily=1, keep_last=0))
    assert kept_ids(utc_plan) == {"s2"}
    berlin = plan_retention(snaps(times), RetentionPolicy(keep_daily=2), ZoneInfo("Europe/Berlin"))
    assert berlin.reasons["s1"] == ["daily snapshot"]


def test_weeks_are_monday_to_sunday() -> None:
    times = [ts("2024-06-09 12:00:00"), ts("2024-06-10 12:00:00")]  # Sunday, Monday
    plan = plan_retention(snaps(times), RetentionPolicy(keep_weekly=2))
    assert all("weekly snapshot" in plan.reasons[i] for i in ("s1", "s2"))


def test_unlimited() -> None:
    s = snaps([ts(f"2024-01-{d:02d} 10:00:00") for d in range(1, 21)])
    assert not plan_retention(s, RetentionPolicy(keep_daily=-1)).remove


def test_empty_policy_removes_nothing() -> None:
    s = snaps([ts(f"2024-01-{d:02d} 10:00:00") for d in range(1, 5)])
    assert not plan_retention(s, RetentionPolicy()).remove


def test_never_removes_newest_verified_full() -> None:
    """Newest records are 'unchanged' and a corrupt full: the newest *verified full*
    backup stays whatever the policy says."""
    s = [
        Snapshot("f1", 1, ts("2024-01-01 10:00:00")),
        Snapshot("f2", 2, ts("2024-01-02 10:00:00")),
        Snapshot("f3", 3, ts("2024-01-03 10:00:00"), status="corrupt"),
    ]
    plan = plan_retention(s, RetentionPolicy(keep_last=1))
    assert kept_ids(plan) == {"f2"}  # f3 cannot be restored: not counted, removed
    assert "newest verified" in plan.reasons["f2"]


def test_kept_unchanged_record_keeps_its_base_chain() -> None:
    s = [
        Snapshot("f1", 1, ts("2024-01-01 10:00:00")),
        Snapshot("f2", 2, ts("2024-01-02 10:00:00")),
        Snapshot("u3", 3, ts("2024-01-03 10:00:00"), kind="unchanged", base_seq=2),
        Snapshot("u4", 4, ts("2024-01-04 10:00:00"), kind="unchanged", base_seq=3),
        Snapshot("f5", 5, ts("2024-01-05 10:00:00")),
        Snapshot("u6", 6, ts("2024-01-06 10:00:00"), kind="unchanged", base_seq=5),
    ]
    plan = plan_retention(s, RetentionPolicy(keep_daily=3))
    # daily: u6, f5, u4 -> u4 keeps u3 and f2 (its chain); f1 goes
    assert kept_ids(plan) == {"u6", "f5", "u4", "u3", "f2"}
    assert [x.id for x in plan.remove] == ["f1"]
    assert "base of 4" in plan.reasons["f2"]


def test_unchanged_on_corrupt_base_is_not_counted() -> None:
    s = [
        Snapshot("f1", 1, ts("2024-01-01 10:00:00")),
        Snapshot("f2", 2, ts("2024-01-02 10:00:00"), status="corrupt"),
        Snapshot("u3", 3, ts("2024-01-03 10:00:00"), kind="unchanged", base_seq=2),
    ]
    plan = plan_retention(s, RetentionPolicy(keep_last=1))
    assert kept_ids(plan) == {"f1"}

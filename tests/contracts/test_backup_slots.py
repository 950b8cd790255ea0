"""``backup_slots`` (the fast set-based count) against a plain reference loop."""

from __future__ import annotations

import random

from collector.contracts.checks import _week_text, backup_slots


def reference(backups: list[float], start: float, end: float, iv: float, tol: float):
    met = total = 0
    s = start
    while s + iv + tol <= end:
        total += 1
        if any(s <= t < s + iv + tol for t in backups):
            met += 1
        s += iv
    return met, total


def test_matches_reference_on_random_histories() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        iv = rnd.choice((3600.0, 6 * 3600.0, 86400.0))
        tol = rnd.choice((0.0, iv / 4, iv / 2, iv))
        start = 1_700_000_000.0 + rnd.random() * iv
        end = start + rnd.uniform(0, 40) * iv
        backups = sorted(
            start - iv + rnd.random() * (end - start + 2 * iv) for _ in range(rnd.randint(0, 60))
        )
        assert backup_slots(backups, start, end, iv, tol) == reference(backups, start, end, iv, tol)


def test_slot_edges() -> None:
    # Daily slots from 0: a backup exactly at a slot start counts for that slot; one at
    # 1 day + 6 h (the end of slot 0's tolerance) counts only for slot 1.
    day = 86400.0
    assert backup_slots([0.0], 0.0, 2 * day + 6 * 3600, day, 6 * 3600) == (1, 2)
    assert backup_slots([day + 6 * 3600], 0.0, 2 * day + 6 * 3600, day, 6 * 3600) == (1, 2)
    assert backup_slots([day + 6 * 3600 - 1], 0.0, 2 * day + 6 * 3600, day, 6 * 3600) == (2, 2)


def test_week_labels() -> None:
    # Day 0 = Thursday 1970-01-01, in ISO week 1970-W01. 2026-01-01 is day
    # 56 * 365 + 14 leap days (1972..2024) = 20454, so Monday 2025-12-29 is day 20451,
    # which ISO counts in 2026-W01; the Sunday before (20450) is in 2025-W52.
    assert _week_text((0 + 3) // 7) == "1970-W01"
    assert _week_text((20451 + 3) // 7) == "2026-W01"
    assert _week_text((20450 + 3) // 7) == "2025-W52"


def test_a_server_enrolled_minutes_ago_is_new_not_non_compliant() -> None:
    import datetime as dt

    from collector.contracts.checks import ServerFacts, check_server
    from collector.contracts.terms import Contract

    now = dt.datetime(2026, 3, 30, 12, tzinfo=dt.UTC).timestamp()
    c = Contract("M-1", "Museum", "acme", "maintenance-support", ("L1",), start=dt.date(2026, 1, 1))
    s = ServerFacts("s1", "L1", enrolled_at=now - 300, last_seen=now, uses_monitoring=True)
    kinds = {f.kind for f in check_server(s, [c], now)}
    assert not kinds & {"backup_overdue", "backup_compliance_low"}
    # A day and seven hours later without a stored backup it is overdue (24 h + 6 h).
    later = now + 31 * 3600
    s.last_seen = later
    assert "backup_overdue" in {f.kind for f in check_server(s, [c], later)}

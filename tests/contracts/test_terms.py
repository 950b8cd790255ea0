"""Contract terms: lengths, renewals (29 February), cancellation, grace, history."""

from __future__ import annotations

import datetime as dt

from collector.contracts.terms import (
    Contract,
    ContractVersion,
    Coverage,
    Renewal,
    add_months,
    coverage_on,
    evaluate_term,
    version_at,
)

D = dt.date.fromisoformat


def contract(**kw: object) -> Contract:
    base: dict[str, object] = {
        "id": "C1",
        "customer": "ACME",
        "partner": "p1",
        "plan": "maintenance-support",
        "licence_ids": ("L1",),
        "start": D("2024-02-29"),
    }
    base.update(kw)
    return Contract(**base)  # type: ignore[arg-type]


def test_add_months_rolls_a_missing_day_forward() -> None:
    # 2025 has no 29 February: the period covers all of February, next starts 1 March.
    assert add_months(D("2024-02-29"), 12) == D("2025-03-01")
    # 2028 is a leap year again: computed from the anchor, no drift to 1 March.
    assert add_months(D("2024-02-29"), 48) == D("2028-02-29")
    # 31 January + 1 month: February has no 31st -> 1 March.
    assert add_months(D("2026-01-31"), 1) == D("2026-03-01")
    assert add_months(D("2026-11-15"), 3) == D("2027-02-15")


def test_one_year_renewal_from_29_february() -> None:
    c = contract(grace_days=0)
    term = evaluate_term(c)
    # One year from 29 Feb 2024: covered through 28 Feb 2025 (BGB §188(3)), ends 1 March.
    assert term.end == D("2025-03-01")
    assert coverage_on(c, D("2025-02-28")) is Coverage.ACTIVE
    assert coverage_on(c, D("2025-03-01")) is Coverage.EXPIRED
    renewed = contract(grace_days=0, renewals=(Renewal(12),))
    # Renewed by one year: 24 months from the anchor -> 29 Feb 2026 does not exist ->
    # ends 1 March 2026 (covered through 28 Feb 2026).
    assert evaluate_term(renewed).end == D("2026-03-01")
    four = contract(grace_days=0, renewals=(Renewal(12), Renewal(12), Renewal(12)))
    # Four years from 29 Feb 2024 -> 29 Feb 2028 exists: covered through 28 Feb 2028.
    assert evaluate_term(four).end == D("2028-02-29")
    assert coverage_on(four, D("2028-02-28")) is Coverage.ACTIVE
    assert coverage_on(four, D("2028-02-29")) is Coverage.EXPIRED


def test_auto_renewal_from_29_february_and_cancel_deadline() -> None:
    c = contract(plan="sma")  # auto-renewing, 90 days notice
    term = evaluate_term(c)
    assert term.end is None
    # Current period on 2024-10-15 ends 1 March 2025 (last day 28 Feb 2025); 90 days
    # before 28 Feb 2025: 30 days back -> 29 Jan, 60 -> 30 Dec, 90 -> 30 Nov 2024.
    assert term.last_day_to_cancel(D("2024-10-15")) == D("2024-11-30")
    # After that deadline the next one counts: period ending 1 March 2026 -> last day
    # 28 Feb 2026 - 90 days = 30 Nov 2025.
    assert term.last_day_to_cancel(D("2024-12-01")) == D("2025-11-30")
    # Period boundaries: the 2028 renewal starts on 29 Feb again (from the anchor).
    assert term.period_end_after(D("2027-06-01")) == D("2028-02-29")


def test_cancellation_in_time_and_too_late() -> None:
    in_time = evaluate_term(contract(plan="sma", cancelled_on=D("2024-11-30")))
    # Received on the last day to cancel: ends with the first period (1 March 2025).
    assert in_time.end == D("2025-03-01")
    assert in_time.status(D("2025-02-28")) is Coverage.ACTIVE
    assert in_time.status(D("2025-03-01")) is Coverage.CANCELLED
    late = evaluate_term(contract(plan="sma", cancelled_on=D("2024-12-01")))
    # One day late: the agreement runs one more year, to 1 March 2026.
    assert late.end == D("2026-03-01")


def test_warranty_runs_90_days_from_installation() -> None:
    c = contract(plan="warranty", start=None, installed_on=D("2026-01-15"))
    term = evaluate_term(c)
    # 15 Jan + 90 days: 16 left in January (to 31), 28 in February -> 44, 31 in March
    # -> 75, 15 more -> 15 April exclusive; last covered day 14 April.
    assert term.end == D("2026-04-15")
    assert coverage_on(c, D("2026-04-14")) is Coverage.ACTIVE
    assert coverage_on(c, D("2026-04-15")) is Coverage.EXPIRED  # no grace in warranty
    assert coverage_on(c, D("2026-01-14")) is Coverage.PENDING
    # Without an installation date the warranty has not started.
    assert coverage_on(contract(plan="warranty", start=None), D("2026-01-20")) is Coverage.PENDING


def test_grace_period_and_term_length_override() -> None:
    c = contract(start=D("2025-06-01"), term_months=36)
    term = evaluate_term(c)
    # 3 years from 1 June 2025 -> ends 1 June 2028; grace 30 days -> to 1 July 2028.
    assert term.end == D("2028-06-01")
    assert term.status(D("2028-06-30")) is Coverage.GRACE
    assert term.status(D("2028-07-01")) is Coverage.EXPIRED


def test_history_keeps_every_version() -> None:
    t = dt.datetime.fromisoformat
    v1 = contract(start=D("2025-06-01"))
    v2 = contract(start=D("2025-06-01"), renewals=(Renewal(12, D("2026-05-30")),))
    history = [
        ContractVersion(t("2025-05-20T10:00+00:00"), v1),
        ContractVersion(t("2026-07-06T09:00+00:00"), v2, "renewal entered late"),
    ]
    # As known on 5 July 2026 the contract had expired (ended 1 June + 30 days grace).
    known_then = version_at(history, t("2026-07-05T12:00+00:00"))
    assert known_then is v1
    assert coverage_on(known_then, D("2026-07-05")) is Coverage.EXPIRED
    # The current record (with the backdated renewal) says that day was covered.
    current = version_at(history, t("2026-08-01T00:00+00:00"))
    assert current is v2
    assert coverage_on(current, D("2026-07-05")) is Coverage.ACTIVE
    assert version_at(history, t("2025-01-01T00:00+00:00")) is None

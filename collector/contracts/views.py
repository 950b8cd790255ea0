"""Shared read views of the contract engine for the CLI and the API."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from collector.contracts import repository as repo
from collector.contracts.codec import contract_to_dict
from collector.contracts.reports import ReportRow, month_bounds, monthly_rows
from collector.contracts.terms import Contract, Coverage, evaluate_term


def contract_view(c: Contract, today: dt.date | None = None) -> dict[str, Any]:
    """A contract with its coverage on ``today`` (default: today in the contract's own
    time zone), last covered day and last day to cancel."""
    if today is None:
        today = dt.datetime.now(ZoneInfo(c.calendar_spec().timezone)).date()
    term = evaluate_term(c)
    st = term.status(today)
    return {
        **contract_to_dict(c),
        "coverage": st.value,
        "last_covered_day": None
        if term.end is None
        else (term.end - dt.timedelta(days=1)).isoformat(),
        "last_day_to_cancel": None
        if st is not Coverage.ACTIVE
        else (d.isoformat() if (d := term.last_day_to_cancel(today)) else None),
    }


def parse_month(text: str) -> tuple[int, int]:
    try:
        y, m = text.split("-")
        year, month = int(y), int(m)
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, not {text!r}") from None
    if not 1 <= month <= 12 or not 2000 <= year <= 2200:
        raise ValueError(f"month must be YYYY-MM, not {text!r}")
    return year, month


def build_report(
    conn: Any, year: int, month: int, by: str, partner: str | None, tz: str, now: float
) -> list[ReportRow]:
    start, end, _ = month_bounds(year, month, tz)
    fleet = repo.fleet_facts(conn, min(now, end), partner=partner, with_reports=True, since=start)
    contracts = repo.current_contracts(conn, partner)
    incidents = repo.list_incidents(conn, partner, opened_from=start, opened_to=end)
    oldest = repo.oldest_report_time(conn)
    return monthly_rows(
        year,
        month,
        fleet.servers,
        contracts.values(),
        by=by,
        tz=tz,
        now=now,
        report_times=fleet.report_times if oldest is not None else None,
        reports_known_from=oldest,
        incidents=incidents,
        cases=repo.support_cases(conn),
        releases=repo.load_releases(conn),
    )

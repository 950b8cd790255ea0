"""Shared read views of the contract engine for the CLI and the API."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from collector.accounts.partners import list_partners
from collector.backups import catalog
from collector.backups.promise import effective_for_server
from collector.contracts import repository as repo
from collector.contracts.codec import contract_to_dict
from collector.contracts.reports import ReportRow, month_bounds, monthly_rows
from collector.contracts.terms import Contract, Coverage, evaluate_term
from collector.health import history


def contract_view(c: Contract, today: dt.date | None = None) -> dict[str, Any]:
    """A contract with its coverage on ``today`` (default: today in the contract's own
    time zone), last covered day and last day to cancel. A stored contract whose term
    cannot be computed (written before its values were checked) shows as ``invalid`` with
    the reason, so one bad row never breaks the list it is in."""
    return {**contract_to_dict(c), **coverage_dates(c, today)}


def coverage_dates(c: Contract, today: dt.date | None = None) -> dict[str, Any]:
    """The coverage part of :func:`contract_view` alone (what a list sorts by, without
    encoding the contract)."""
    try:
        if today is None:
            today = dt.datetime.now(ZoneInfo(c.calendar_spec().timezone)).date()
        term = evaluate_term(c)
        st = term.status(today)
        last_day = None if term.end is None else (term.end - dt.timedelta(days=1)).isoformat()
        cancel = term.last_day_to_cancel(today) if st is Coverage.ACTIVE else None
    except (ArithmeticError, ValueError, LookupError) as exc:
        return {
            "coverage": "invalid",
            "error": f"the term cannot be computed: {exc}",
            "last_covered_day": None,
            "last_day_to_cancel": None,
        }
    return {
        "coverage": st.value,
        "last_covered_day": last_day,
        "last_day_to_cancel": None if cancel is None else cancel.isoformat(),
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
    """The monthly rows of ``partner`` (every partner's when None, each evaluated against
    its own contracts only: ids and licence ids are a partner's own)."""
    start, end, _ = month_bounds(year, month, tz)
    if partner is not None:
        partners = [partner]
    else:
        partners = sorted({p.name for p in list_partners(conn)} | repo.contract_partners(conn))
    oldest = history.oldest_time(conn)
    releases = repo.load_releases(conn)
    merged: dict[tuple[str, str], ReportRow] = {}
    for name in partners:
        fleet = repo.fleet_facts(conn, min(now, end), partner=name, with_reports=True, since=start)
        for row in monthly_rows(
            year,
            month,
            fleet.servers,
            repo.current_contracts(conn, name).values(),
            by=by,
            tz=tz,
            now=now,
            report_times=fleet.report_times if oldest is not None else None,
            reports_known_from=oldest,
            incidents=repo.list_incidents(conn, name, opened_from=start, opened_to=end),
            cases=repo.support_cases(conn, name),
            releases=releases,
            policy_overrides=_policy_overrides(conn, fleet.servers, now),
        ):
            key = (row.partner, row.customer)
            if key in merged:
                _add_row(merged[key], row)
            else:
                merged[key] = row
    return [merged[k] for k in sorted(merged)]


def _policy_overrides(conn: Any, servers: Any, now: float) -> dict[str, str]:
    """server id -> its backup policy override and the promises it breaks, in words.

    Only a server with an override of its own or its partner's can be listed, so the
    others (most of a fleet) are not looked at: each look-up finds the server's covering
    contract again."""
    scopes = catalog.override_scopes(conn)
    if not any(scope == "partner" for scope, _ in scopes):
        own = {scope_id for scope, scope_id in scopes if scope == "server"}
        servers = [s for s in servers if s.server_id in own]
    out = {}
    for s in servers:
        eff = effective_for_server(conn, s.server_id, now=now)
        if eff.override is not None and eff.broken:
            out[s.server_id] = f"{eff.override} (breaks: {', '.join(eff.broken)})"
    return out


def _add_row(into: ReportRow, row: ReportRow) -> None:
    """Sum two partners' rows of the same label (the "(no contract)" row)."""
    for f in dataclasses.fields(ReportRow):
        value = getattr(row, f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(into, f.name, getattr(into, f.name) + value)
        elif isinstance(value, list):
            getattr(into, f.name).extend(value)
    if into.backup_slots_total:
        into.backup_compliance = round(into.backup_slots_met / into.backup_slots_total, 4)

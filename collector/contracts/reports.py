"""Monthly compliance report rows, per partner or per customer, and their rendering.

For a calendar month (in a given zone): days each server was covered (active, grace,
uncovered), entitlement findings at the month's end, backup compliance (slots met), gaps
in monitoring (time between reports longer than the health policy allows) and incident
targets met. Pure: the caller passes the data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo

from collector.contracts.calendar import business_calendar
from collector.contracts.checks import (
    Finding,
    ServerFacts,
    SupportCase,
    backup_slots,
    evaluate,
    index_contracts,
    with_installation_dates,
)
from collector.contracts.incidents import ClockStatus, Incident, status
from collector.contracts.plans import Plan, get_plan
from collector.contracts.terms import Contract, Coverage, Term, best_contract, evaluate_term

ENTITLEMENT_KINDS = frozenset(
    {
        "health_monitoring_not_entitled",
        "online_backup_not_entitled",
        "licence_transfer_not_entitled",
        "version_not_covered",
        "support_cases_over_limit",
    }
)


@dataclass
class ReportRow:
    month: str
    partner: str
    customer: str
    servers: int = 0
    server_days: int = 0
    days_active: int = 0
    days_grace: int = 0
    days_uncovered: int = 0
    entitlement_findings: int = 0
    backup_slots_met: int = 0
    backup_slots_total: int = 0
    backup_compliance: float | None = None
    monitoring_gaps: int = 0
    monitoring_gap_seconds: int = 0
    incidents: int = 0
    response_met: int = 0
    response_total: int = 0
    resolution_met: int = 0
    resolution_total: int = 0
    backup_policy_overrides: str = ""
    """Servers whose backup policy runs below the promise by the partner's override:
    ``server: reason (breaks: ...)``, ``; `` between servers."""
    server_details: list[dict[str, object]] = field(default_factory=list)
    """Per server, for the customer: counted from, coverage days, backup slots (JSON only)."""
    incident_details: list[dict[str, object]] = field(default_factory=list)
    """Per incident: each clock kept or missed, and why a miss (JSON only)."""


def month_bounds(year: int, month: int, tz: str) -> tuple[float, float, list[dt.date]]:
    zone = ZoneInfo(tz)
    first = dt.date(year, month, 1)
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    start = dt.datetime.combine(first, dt.time(0), zone).timestamp()
    end = dt.datetime.combine(nxt, dt.time(0), zone).timestamp()
    days = [first + dt.timedelta(days=i) for i in range((nxt - first).days)]
    return start, end, days


def monitoring_gaps(
    reports: Sequence[float], start: float, end: float, silent_after: float
) -> tuple[int, float]:
    """(count, seconds) of stretches in ``[start, end)`` longer than ``silent_after``
    without a report; the stretch counts from the moment the server became silent."""
    count = 0
    total = 0.0
    prev = start
    for t in sorted(r for r in reports if start <= r < end):
        if t - prev > silent_after:
            count += 1
            total += t - prev - silent_after
        prev = t
    if end - prev > silent_after:
        count += 1
        total += end - prev - silent_after
    return count, total


@dataclass
class _Month:
    """One month's count in progress: its bounds and the rows counted so far."""

    label: str
    by: str
    start: float
    end: float
    until: float
    """The month's end, or ``now`` while the month runs."""
    days: list[dt.date]
    last_day: dt.date
    """The last day counted (the day of ``until``)."""
    zone: ZoneInfo
    rows: dict[tuple[str, str], ReportRow] = field(default_factory=dict)

    def row(self, partner: str, customer: str) -> ReportRow:
        key = (partner, customer if self.by == "customer" else "")
        r = self.rows.get(key)
        if r is None:
            r = self.rows[key] = ReportRow(self.label, key[0], key[1])
        return r

    def finished(self) -> list[ReportRow]:
        for r in self.rows.values():
            if r.backup_slots_total:
                r.backup_compliance = round(r.backup_slots_met / r.backup_slots_total, 4)
        return [self.rows[k] for k in sorted(self.rows)]


@dataclass(frozen=True)
class _ServerInputs:
    """What a server's count reads beyond the server and its contracts."""

    findings: Mapping[str, int]
    """Entitlement findings per server id."""
    report_times: Mapping[str, Sequence[float]] | None
    reports_known_from: float | None
    overrides: Mapping[str, str]


def monthly_rows(
    year: int,
    month: int,
    servers: Iterable[ServerFacts],
    contracts: Iterable[Contract],
    *,
    by: str = "customer",
    tz: str = "Europe/Berlin",
    now: float | None = None,
    report_times: Mapping[str, Sequence[float]] | None = None,
    incidents: Iterable[Incident] = (),
    cases: Sequence[SupportCase] = (),
    releases: Mapping[tuple[str, str], dt.date] | None = None,
    reports_known_from: float | None = None,
    policy_overrides: Mapping[str, str] | None = None,
) -> list[ReportRow]:
    """One row per partner (``by="partner"``) or per (partner, customer).

    ``reports_known_from``: the oldest report time storage still has (history is pruned);
    monitoring gaps are counted only from then on, never from missing history.
    ``policy_overrides``: server id -> the override of its backup policy, in words."""
    if by not in ("partner", "customer"):
        raise ValueError("by must be 'partner' or 'customer'")
    start, end, days = month_bounds(year, month, tz)
    until = end if now is None else min(end, now)
    zone = ZoneInfo(tz)
    last_day = dt.datetime.fromtimestamp(until - 1, zone).date()
    m = _Month(f"{year:04d}-{month:02d}", by, start, end, until, days, last_day, zone)
    server_list = list(servers)
    contract_list = with_installation_dates(contracts, server_list)
    by_licence = index_contracts(contract_list)
    contract_by_id = {c.id: c for c in contract_list}
    findings = evaluate(
        server_list,
        contract_list,
        until - 1,
        releases=releases,
        cases=cases,
        entitlements_only=True,
    )
    server_findings, contract_findings = _entitlement_counts(findings)
    inputs = _ServerInputs(
        server_findings, report_times, reports_known_from, policy_overrides or {}
    )
    for s in server_list:
        _count_server(m, s, by_licence.get(s.licence_id or "", []), inputs)
    for cid, n in contract_findings.items():
        c = contract_by_id.get(cid)
        if c is not None:
            m.row(c.partner, c.customer).entitlement_findings += n
    now_dt = dt.datetime.fromtimestamp(until, dt.UTC)
    for inc in incidents:
        if start <= inc.opened_at.timestamp() < end:
            c = contract_by_id.get(inc.contract_id or "")
            r = m.row(c.partner, c.customer) if c else m.row(NO_CONTRACT, NO_CONTRACT)
            _count_incident(r, inc, now_dt)
    return m.finished()


NO_CONTRACT = "(no contract)"
"""The partner and customer of the row of servers and incidents without a contract."""

_DETAIL_KEYS = (
    "days_active",
    "days_grace",
    "days_uncovered",
    "backup_slots_met",
    "backup_slots_total",
)
"""A server's share of its row, in its detail."""


def _count_server(
    m: _Month, s: ServerFacts, covering: Sequence[Contract], inputs: _ServerInputs
) -> None:
    """One server's days, findings, backup slots and monitoring gaps, into the row of the
    contract that covers it on the last day counted (the "(no contract)" row: days only)."""
    chosen = best_contract(covering, m.last_day)
    # Every count runs from the later of enrollment, contract start and the month's.
    counted_from = max(m.start, s.enrolled_at or m.start, _contract_start(covering, m.zone))
    if counted_from >= m.until:
        return
    first_day = dt.datetime.fromtimestamp(counted_from, m.zone).date()
    if chosen is None:
        r = m.row(NO_CONTRACT, NO_CONTRACT)
        r.servers += 1
        n = sum(1 for d in m.days if first_day <= d <= m.last_day)
        r.server_days += n
        r.days_uncovered += n
        return
    contract = chosen[0]
    plan = get_plan(contract.plan)
    r = m.row(contract.partner, contract.customer)
    before = [getattr(r, k) for k in _DETAIL_KEYS]
    detail: dict[str, object] = {
        "server_id": s.server_id,
        "contract_id": contract.id,
        "plan": plan.title,
        "counted_from": first_day.isoformat(),
    }
    r.server_details.append(detail)
    r.servers += 1
    r.entitlement_findings += inputs.findings.get(s.server_id, 0)
    override = inputs.overrides.get(s.server_id)
    if override is not None:
        note = f"{s.server_id}: {override}"
        r.backup_policy_overrides = "; ".join(filter(None, [r.backup_policy_overrides, note]))
    periods = coverage_periods(covering, first_day, m.last_day)
    _count_days(r, periods)
    _count_backup_slots(r, s, periods, counted_from, m.until, m.zone)
    if chosen[2] in (Coverage.ACTIVE, Coverage.GRACE):
        _count_service(r, s, plan, counted_from, m.until, inputs)
    detail.update({k: getattr(r, k) - b for k, b in zip(_DETAIL_KEYS, before, strict=True)})
    if override is not None:
        detail["backup_policy_override"] = override


COLUMNS = tuple(
    f.name for f in fields(ReportRow) if f.name not in ("server_details", "incident_details")
)
"""CSV columns: the per-server and per-incident details are in the JSON only."""


def _entitlement_counts(findings: Iterable[Finding]) -> tuple[dict[str, int], dict[str, int]]:
    """Entitlement findings per server, and per contract for those not about one server."""
    server_findings: dict[str, int] = {}
    contract_findings: dict[str, int] = {}
    for f in findings:
        if f.kind in ENTITLEMENT_KINDS:
            if f.server_id is not None:
                server_findings[f.server_id] = server_findings.get(f.server_id, 0) + 1
            elif f.contract_id is not None:
                contract_findings[f.contract_id] = contract_findings.get(f.contract_id, 0) + 1
    return server_findings, contract_findings


def _count_service(
    r: ReportRow,
    s: ServerFacts,
    plan: Plan,
    counted_from: float,
    until: float,
    inputs: _ServerInputs,
) -> None:
    """Monitoring gaps of a covered server, from ``counted_from``."""
    if plan.entitlements.health_monitoring and inputs.report_times is not None:
        gap_from = max(counted_from, inputs.reports_known_from or counted_from)
        times = inputs.report_times.get(s.server_id, ())
        _add_monitoring_gaps(r, times, gap_from, until, plan)


def _count_backup_slots(
    r: ReportRow,
    s: ServerFacts,
    periods: Sequence[Period],
    counted_from: float,
    until: float,
    zone: ZoneInfo,
) -> None:
    """Backup slots under the contract that counted on each day: a change of contract in
    the month (maintenance, then premium from the 15th) counts each part by its own plan."""
    merged: list[tuple[dt.date, dt.date, Contract]] = []
    for first, end, best in periods:
        if best is None or best[2] not in (Coverage.ACTIVE, Coverage.GRACE):
            continue
        if merged and merged[-1][2] is best[0] and merged[-1][1] == first:
            merged[-1] = (merged[-1][0], end, best[0])
        else:
            merged.append((first, end, best[0]))
    for first, end, contract in merged:
        plan = get_plan(contract.plan)
        if not plan.entitlements.online_backup or plan.backup is None:
            continue
        a = max(counted_from, dt.datetime.combine(first, dt.time(0), zone).timestamp())
        b = min(until, dt.datetime.combine(end, dt.time(0), zone).timestamp())
        if a >= b:
            continue
        met, total = backup_slots(
            s.backups, a, b, float(plan.backup.interval_s), float(plan.backup.tolerance_s)
        )
        r.backup_slots_met += met
        r.backup_slots_total += total


Period = tuple[dt.date, dt.date, tuple[Contract, Term, Coverage] | None]
"""Days ``[first, end)`` over which the same contract counts, with its term and coverage."""


def coverage_periods(
    covering: Sequence[Contract], first_day: dt.date, last_day: dt.date
) -> list[Period]:
    """The days ``first_day`` to ``last_day`` (inclusive) cut into periods over which
    :func:`best_contract` gives the same answer, each with that answer.

    A contract's coverage changes only on its term's start, end and end of grace, so the
    best contract is chosen once per period between those days instead of once per day
    (a month of 10,000 servers was 600,000 choices, each evaluating every term)."""
    if first_day > last_day:
        return []
    after = last_day + dt.timedelta(days=1)
    cuts = {first_day, after}
    for c in covering:
        term = evaluate_term(c)
        for day in (term.anchor, term.end, term.grace_until):
            if day is not None and first_day < day < after:
                cuts.add(day)
    edges = sorted(cuts)
    return [(a, b, best_contract(covering, a)) for a, b in itertools.pairwise(edges)]


def _contract_start(covering: Sequence[Contract], zone: ZoneInfo) -> float:
    """Midnight of the earliest anchor among the server's contracts (0 when none is known:
    a pending warranty without an installation date starts nothing)."""
    anchors = []
    for c in covering:
        try:
            anchor = evaluate_term(c).anchor
        except (ArithmeticError, ValueError, LookupError):
            continue
        if anchor is not None:
            anchors.append(dt.datetime.combine(anchor, dt.time(0), zone).timestamp())
    return min(anchors, default=0.0)


def _count_days(r: ReportRow, periods: Sequence[Period]) -> None:
    """The server's days of the month up to the last day counted: active, grace or
    uncovered."""
    for first, end, best in periods:
        n = (end - first).days
        r.server_days += n
        st = best[2] if best else Coverage.EXPIRED
        if st is Coverage.ACTIVE:
            r.days_active += n
        elif st is Coverage.GRACE:
            r.days_grace += n
        else:
            r.days_uncovered += n


def _add_monitoring_gaps(
    r: ReportRow, times: Sequence[float], gap_from: float, until: float, plan: Plan
) -> None:
    n, secs = (
        monitoring_gaps(times, gap_from, until, plan.health.silent_after_s)
        if gap_from < until
        else (0, 0.0)
    )
    r.monitoring_gaps += n
    r.monitoring_gap_seconds += round(secs)


def _count_incident(r: ReportRow, inc: Incident, now_dt: dt.datetime) -> None:
    """One incident opened in the month: its response and resolution clocks, once decided."""
    r.incidents += 1
    st = status(inc, now_dt)
    for clock, met_attr, total_attr in (
        (st.response, "response_met", "response_total"),
        (st.resolution, "resolution_met", "resolution_total"),
    ):
        if clock.status in (ClockStatus.MET, ClockStatus.MISSED, ClockStatus.BREACHED):
            setattr(r, total_attr, getattr(r, total_attr) + 1)
            if clock.status is ClockStatus.MET:
                setattr(r, met_attr, getattr(r, met_attr) + 1)
    cal = business_calendar(inc.calendar)
    r.incident_details.append(
        {
            "id": inc.id,
            "server_id": inc.server_id,
            "title": inc.title,
            "priority": inc.priority,
            "opened_at": cal.to_local(inc.opened_at).isoformat(),
            "state": st.state.value,
            "response": _clock_words(st.response, "answered", cal),
            "resolution": _clock_words(st.resolution, "resolved", cal),
        }
    )


def _clock_words(clock: Any, done: str, cal: Any) -> dict[str, object]:
    """A clock for the customer: its target, due time, kept or missed and why a miss."""

    def local(t: dt.datetime | None) -> str | None:
        return None if t is None else cal.to_local(t).strftime("%Y-%m-%d %H:%M %Z")

    kept: bool | None = None
    reason = ""
    if clock.status is ClockStatus.MET:
        kept = True
    elif clock.status is ClockStatus.MISSED:
        kept = False
        reason = f"{done} {local(clock.stopped_at)}, due {local(clock.due)} ({clock.target})"
    elif clock.status is ClockStatus.BREACHED:
        kept = False
        reason = f"not {done} by {local(clock.due)} ({clock.target})"
    return {
        "target": clock.target,
        "due": local(clock.due),
        "status": clock.status.value,
        "kept": kept,
        "reason": reason,
    }


def render_json(rows: Iterable[ReportRow]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)


def render_csv(rows: Iterable[ReportRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if v is None else v for v in (getattr(r, c) for c in COLUMNS)])
    return buf.getvalue()


def render_json_document(month: str, rows: Iterable[ReportRow]) -> str:
    """The API's answer: ``{"month": ..., "rows": [...]}``."""
    return json.dumps({"month": month, "rows": [asdict(r) for r in rows]})

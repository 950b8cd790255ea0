"""Contract checks: pure functions over plain data, one :class:`Finding` per problem.

Inputs are what storage already has (servers, contracts, backup times, last report,
release catalogue, support cases); nothing here reads a clock or a database, so any past
day can be re-evaluated by passing its instant as ``now``. Times are epoch seconds (UTC)
for speed; days are local dates in the contract's calendar zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from collector.contracts.plans import Plan, get_plan
from collector.contracts.terms import Contract, Coverage, Term, best_contract
from collector.gc_pause import gc_paused

DAY = 86400.0


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    severity: Severity
    server_id: str | None
    contract_id: str | None
    clause: str
    """The contract clause it comes from, e.g. ``maintenance-support: online backup``."""
    message: str
    evidence: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "severity": self.severity.value,
            "server_id": self.server_id,
            "contract_id": self.contract_id,
            "clause": self.clause,
            "message": self.message,
            "evidence": dict(self.evidence),
        }


@dataclass(slots=True)
class ServerFacts:
    """What the collector knows about one server, as plain data."""

    server_id: str
    licence_id: str | None
    machine_id: str = ""
    licensed_machine_id: str | None = None
    """The machine identity the licence was first bound to (None = unknown)."""
    installed_on: dt.date | None = None
    enrolled_at: float | None = None
    """When the server enrolled: no count (slots, server-days, gaps) starts before it."""
    last_seen: float | None = None
    uses_monitoring: bool = False
    """The server sends health reports."""
    uses_backup: bool = False
    """The server uploaded (or tried to upload) a backup in the window."""
    product: str = ""
    version: str = ""
    backups: Sequence[float] = ()
    """When the collector stored a verified backup, over (at least) the last 30 days,
    ascending (what the agent reports does not count)."""
    kept_backups: Sequence[float] | None = None
    """Times of the backups the store keeps now; None = not known (no retention check)."""


@dataclass(frozen=True, slots=True)
class SupportCase:
    id: str
    contract_id: str
    opened_at: float
    server_id: str | None = None


Releases = Mapping[tuple[str, str], dt.date]
"""(product, version) -> release date."""


@dataclass(frozen=True)
class CheckSettings:
    expiry_warnings_days: tuple[int, ...] = (60, 30, 7)
    compliance_window_days: int = 30
    compliance_min_share: float = 0.9


DEFAULT_SETTINGS = CheckSettings()

_zone_cache: dict[str, ZoneInfo] = {}


def _local_date(now: float, tz: str) -> dt.date:
    zone = _zone_cache.get(tz)
    if zone is None:
        zone = _zone_cache[tz] = ZoneInfo(tz)
    return dt.datetime.fromtimestamp(now, zone).date()


def _clause(plan: Plan, what: str) -> str:
    return f"{plan.name}: {what}"


def check_server(
    server: ServerFacts,
    contracts: Sequence[Contract],
    now: float,
    *,
    releases: Releases | None = None,
    settings: CheckSettings = DEFAULT_SETTINGS,
    entitlements_only: bool = False,
    partner_has_contracts: bool = True,
) -> list[Finding]:
    """All findings for one server at instant ``now`` given the contracts covering its
    licence (any order; the best one on that day counts). ``entitlements_only``: skip the
    checks that find no entitlement (coverage dates, backups, silence), as the monthly
    report counts only those. ``partner_has_contracts``: False when the server's partner
    has none on record, so the contract engine entitles its servers to everything."""
    if not contracts:
        return _uncovered(server, partner_has_contracts)
    if server.installed_on is not None:
        contracts = [
            dataclasses.replace(c, installed_on=server.installed_on)
            if c.installed_on is None and get_plan(c.plan).term.anchor == "installation"
            else c
            for c in contracts
        ]
    tz = (contracts[0].calendar or get_plan(contracts[0].plan).calendar).timezone
    today = _local_date(now, tz)
    chosen = best_contract(contracts, today)
    assert chosen is not None
    contract, term, status = chosen
    plan = get_plan(contract.plan)
    if contract.calendar is not None and contract.calendar.timezone != tz:
        today = _local_date(now, contract.calendar.timezone)
        status = term.status(today)
    findings: list[Finding] = []
    if not entitlements_only:
        findings.extend(_coverage(server, contract, plan, term, status, today, settings))
    covered = status in (Coverage.ACTIVE, Coverage.GRACE)
    ent = plan.entitlements
    if server.uses_monitoring and not (covered and ent.health_monitoring):
        findings.append(_not_entitled(server, contract, plan, "health_monitoring"))
    if server.uses_backup and not (covered and ent.online_backup):
        findings.append(_not_entitled(server, contract, plan, "online_backup"))
    if covered and ent.online_backup and plan.backup is not None and not entitlements_only:
        findings.extend(_backups(server, contract, plan, term, now, tz, settings))
    if covered and ent.health_monitoring and not entitlements_only:
        f = _silent(server, contract, plan, now)
        if f is not None:
            findings.append(f)
    if releases is not None and server.version:
        f = _version(server, contract, plan, term, releases)
        if f is not None:
            findings.append(f)
    f = _transferred(server, contract, plan, status, covered)
    if f is not None:
        findings.append(f)
    return findings


def _uncovered(server: ServerFacts, partner_has_contracts: bool = True) -> list[Finding]:
    """A server no contract covers: that, and its backups if it makes them (refused, unless
    its partner has no contract on record at all: then nothing is refused)."""
    message = (
        "no contract covers this server's licence"
        if partner_has_contracts
        else "no contract is on record for this partner: import the maintenance contracts "
        "to check this server's coverage (until then nothing is refused)"
    )
    out = [
        Finding(
            "no_contract",
            Severity.WARNING,
            server.server_id,
            None,
            "contract: coverage",
            message,
            {"licence_id": server.licence_id},
        )
    ]
    if server.uses_backup and partner_has_contracts:
        out.append(_not_entitled(server, None, None, "online_backup"))
    return out


def _transferred(
    server: ServerFacts, contract: Contract, plan: Plan, status: Coverage, covered: bool
) -> Finding | None:
    """The licence runs on other hardware than it was first bound to, uncovered."""
    if not (
        server.licensed_machine_id
        and server.machine_id
        and server.machine_id != server.licensed_machine_id
    ) or (covered and plan.entitlements.licence_transfer):
        return None
    return Finding(
        "licence_transfer_not_entitled",
        Severity.HIGH,
        server.server_id,
        contract.id,
        _clause(plan, "licence transfer"),
        "the licence runs on different hardware and the contract does not include licence transfer",
        {
            "licence_id": server.licence_id,
            "licensed_machine_id": server.licensed_machine_id,
            "machine_id": server.machine_id,
            "coverage": status.value,
        },
    )


_NOT_ACTIVE = {
    Coverage.PENDING: ("coverage_pending", Severity.INFO, "the contract's term has not started"),
    Coverage.GRACE: (
        "coverage_grace",
        Severity.WARNING,
        "the contract has ended; the grace period is running",
    ),
    Coverage.EXPIRED: ("coverage_expired", Severity.HIGH, "the contract has expired"),
    Coverage.CANCELLED: (
        "coverage_cancelled",
        Severity.WARNING,
        "the contract was cancelled and has ended",
    ),
}
"""Coverage other than active: one finding each (kind, severity, words)."""


def _coverage(
    server: ServerFacts,
    contract: Contract,
    plan: Plan,
    term: Term,
    status: Coverage,
    today: dt.date,
    settings: CheckSettings,
) -> list[Finding]:
    if status is Coverage.ACTIVE:
        # Fast path (most servers): nothing to say until a threshold is near.
        horizon = max(settings.expiry_warnings_days)
        if term.end is not None and (term.end - today).days > horizon:
            return []
        if term.end is None and not term.auto_renew:
            return []
    base = {"coverage": status.value, "day": today.isoformat()}
    if term.end is not None:
        base["last_covered_day"] = (term.end - dt.timedelta(days=1)).isoformat()
    if status is not Coverage.ACTIVE:
        return [_not_active(server, contract, plan, term, status, base)]
    found = (
        _expiry_warning(server, contract, plan, term, today, settings, base)
        if term.end is not None
        else _cancel_deadline(server, contract, plan, term, today, settings, base)
    )
    return [] if found is None else [found]


def _not_active(
    server: ServerFacts,
    contract: Contract,
    plan: Plan,
    term: Term,
    status: Coverage,
    base: dict[str, str],
) -> Finding:
    kind, severity, words = _NOT_ACTIVE[status]
    evidence = base
    if status is Coverage.GRACE:
        assert term.grace_until is not None
        evidence = {**base, "grace_until": (term.grace_until - dt.timedelta(days=1)).isoformat()}
    return Finding(
        kind, severity, server.server_id, contract.id, _clause(plan, "term"), words, evidence
    )


def _expiry_warning(
    server: ServerFacts,
    contract: Contract,
    plan: Plan,
    term: Term,
    today: dt.date,
    settings: CheckSettings,
    base: dict[str, str],
) -> Finding | None:
    """An active contract with an end date: a warning at the nearest threshold reached."""
    assert term.end is not None
    days_left = (term.end - today).days  # 1 = today is the last covered day
    thresholds = sorted(settings.expiry_warnings_days)
    hit = next((d for d in thresholds if days_left <= d), None)
    if hit is None:
        return None
    sev = Severity.HIGH if hit <= 7 else Severity.WARNING if hit <= 30 else Severity.INFO
    return Finding(
        f"expiring_{hit}d",
        sev,
        server.server_id,
        contract.id,
        _clause(plan, "term"),
        f"the contract ends within {hit} days",
        {**base, "days_left": days_left},
    )


def _cancel_deadline(
    server: ServerFacts,
    contract: Contract,
    plan: Plan,
    term: Term,
    today: dt.date,
    settings: CheckSettings,
    base: dict[str, str],
) -> Finding | None:
    """An active contract that renews by itself: a reminder as the last day to cancel nears."""
    deadline = term.last_day_to_cancel(today)
    if deadline is None:
        return None
    days = (deadline - today).days
    if days > max(settings.expiry_warnings_days):
        return None
    renews = term.period_end_after(deadline)
    return Finding(
        "cancel_deadline",
        Severity.INFO,
        server.server_id,
        contract.id,
        _clause(plan, "automatic renewal"),
        "the agreement renews automatically unless cancelled by the last day to cancel",
        {
            **base,
            "last_day_to_cancel": deadline.isoformat(),
            "renews_on": renews.isoformat() if renews else None,
            "days_to_deadline": days,
        },
    )


_ENTITLEMENT_WORDS = {
    "health_monitoring": (
        "health monitoring",
        "the server sends health reports but its contract does not include health "
        "monitoring; the collector keeps only a heartbeat",
    ),
    "online_backup": (
        "online backup",
        "the server uploads backups but its contract does not include online backup; "
        "uploads are refused",
    ),
}


def _not_entitled(
    server: ServerFacts, contract: Contract | None, plan: Plan | None, what: str
) -> Finding:
    words, message = _ENTITLEMENT_WORDS[what]
    return Finding(
        f"{what}_not_entitled",
        Severity.WARNING,
        server.server_id,
        None if contract is None else contract.id,
        f"{plan.name}: {words}" if plan else f"contract: {words}",
        message,
        {"plan": None if plan is None else plan.name, "licence_id": server.licence_id},
    )


def backup_slots(
    backups: Sequence[float],
    start: float,
    end: float,
    interval: float,
    tolerance: float,
) -> tuple[int, int]:
    """(met, total) backup slots of ``interval`` seconds from ``start`` up to ``end``.

    A slot ``[s, s+interval)`` is met by a successful backup in ``[s, s+interval+tolerance)``.
    Only whole slots that have ended (plus tolerance) by ``end`` count. ``backups`` must be
    ascending.
    """
    if interval <= 0 or start + interval + tolerance > end:
        return 0, 0
    total = int((end - tolerance - start) // interval)
    while start + total * interval + tolerance > end:  # float rounding guard
        total -= 1
    while start + (total + 1) * interval + tolerance <= end:
        total += 1
    # Only backups that can meet a counted slot: [start, last slot end + tolerance).
    sub = backups[
        bisect_left(backups, start) : bisect_left(backups, start + total * interval + tolerance)
    ]
    if tolerance <= interval:
        # A backup at offset o meets slot floor(o / interval) and, within the tolerance
        # after a slot's end, also slot floor((o - tolerance) / interval).
        hit = {int((t - start) // interval) for t in sub}
        if tolerance > 0:
            hit.update({int((t - start - tolerance) // interval) for t in sub})
        hit.discard(-1)
        hit.discard(total)
        return len(hit), total
    met = 0
    i, n = 0, len(sub)
    for k in range(total):
        s = start + k * interval
        while i < n and sub[i] < s:
            i += 1
        if i < n and sub[i] < s + interval + tolerance:
            met += 1
    return met, total


def _backups(
    server: ServerFacts,
    contract: Contract,
    plan: Plan,
    term: Term,
    now: float,
    tz: str,
    settings: CheckSettings,
) -> list[Finding]:
    policy = plan.backup
    assert policy is not None and term.anchor is not None
    sid = server.server_id
    out: list[Finding] = []
    interval = float(policy.interval_s)
    tolerance = float(policy.tolerance_s)
    covered_from = dt.datetime.combine(term.anchor, dt.time(0), ZoneInfo(tz)).timestamp()
    if server.enrolled_at is not None:
        # Nothing is owed before the server existed: its first slot starts at enrollment.
        covered_from = max(covered_from, server.enrolled_at)
    last = server.backups[-1] if server.backups else None
    due_since = (last if last is not None else covered_from) + interval + tolerance
    if now > due_since:
        overdue = now - (last if last is not None else covered_from) - interval
        sev = Severity.HIGH if overdue >= 3 * interval else Severity.WARNING
        out.append(
            Finding(
                "backup_overdue",
                sev,
                sid,
                contract.id,
                _clause(plan, "online backup interval"),
                "no successful backup within the entitled interval",
                {
                    "last_backup": last,
                    "interval_s": policy.interval_s,
                    "tolerance_s": policy.tolerance_s,
                    "overdue_s": round(overdue),
                },
            )
        )
    window_start = max(now - settings.compliance_window_days * DAY, covered_from)
    met, total = backup_slots(server.backups, window_start, now, interval, tolerance)
    if total and met / total < settings.compliance_min_share:
        out.append(
            Finding(
                "backup_compliance_low",
                Severity.WARNING,
                sid,
                contract.id,
                _clause(plan, "online backup interval"),
                f"only {met} of {total} backup slots met in the last "
                f"{settings.compliance_window_days} days",
                {"met": met, "total": total, "share": round(met / total, 4)},
            )
        )
    if server.kept_backups is not None:
        f = _retention(server, contract, plan, tz)
        if f is not None:
            out.append(f)
    return out


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


_MONTH_CACHE: dict[int, int] = {}


def _month_of_day(day: int) -> int:
    """year*12 + month-1 of a day number (cached: the same days recur for every server)."""
    m = _MONTH_CACHE.get(day)
    if m is None:
        d = dt.date.fromordinal(_EPOCH_ORDINAL + day)
        m = _MONTH_CACHE[day] = d.year * 12 + d.month - 1
    return m


def _day_text(day: int) -> str:
    return dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


def _week_text(week: int) -> str:
    y, w, _ = dt.date.fromordinal(_EPOCH_ORDINAL + week * 7 - 3).isocalendar()
    return f"{y}-W{w:02d}"


def local_day_numbers(times: Sequence[float], zone: ZoneInfo) -> set[int]:
    """Local calendar days (days since 1970-01-01) of epoch instants.

    Fast path: when the zone's offset is the same at both ends of a span shorter than
    60 days there is no DST switch inside, so one offset serves every instant.
    """
    if not times:
        return set()
    lo, hi = min(times), max(times)
    off_lo = dt.datetime.fromtimestamp(lo, zone).utcoffset()
    off_hi = dt.datetime.fromtimestamp(hi, zone).utcoffset()
    if off_lo == off_hi and off_lo is not None and hi - lo < 60 * DAY:
        off = off_lo.total_seconds()
        return {int((t + off) // DAY) for t in times}
    return {dt.datetime.fromtimestamp(t, zone).date().toordinal() - _EPOCH_ORDINAL for t in times}


def _retention(server: ServerFacts, contract: Contract, plan: Plan, tz: str) -> Finding | None:
    """Periods (days/weeks/months within the promise) in which a backup was made but
    none is kept any more, and fewer kept than ``keep_last`` promises."""
    assert plan.backup is not None and server.kept_backups is not None
    r = plan.backup.retention
    made = server.backups
    if not made:
        return None
    kept_all = server.kept_backups
    if len(kept_all) >= min(r.keep_last, len(made)) and not set(made).difference(kept_all):
        return None  # everything made is still kept
    zone = _zone_cache.get(tz) or ZoneInfo(tz)

    def periods(
        times: Sequence[float],
    ) -> tuple[list[int], list[int], list[int]]:
        days = sorted(local_day_numbers(times, zone), reverse=True)
        weeks = sorted({(d + 3) // 7 for d in days}, reverse=True)  # ISO weeks (Monday)
        months = sorted({_month_of_day(d) for d in days}, reverse=True)
        return days, weeks, months

    made_d, made_w, made_m = periods(made)
    kept_d, kept_w, kept_m = periods(server.kept_backups)
    kd, kw, km = set(kept_d), set(kept_w), set(kept_m)
    missing: dict[str, list[str]] = {}
    miss_d = [_day_text(d) for d in made_d[: r.keep_daily] if d not in kd]
    miss_w = [_week_text(w) for w in made_w[: r.keep_weekly] if w not in kw]
    miss_m = [f"{m // 12}-{m % 12 + 1:02d}" for m in made_m[: r.keep_monthly] if m not in km]
    if miss_d:
        missing["daily"] = miss_d
    if miss_w:
        missing["weekly"] = miss_w
    if miss_m:
        missing["monthly"] = miss_m
    short_last = len(server.kept_backups) < min(r.keep_last, len(made))
    if not missing and not short_last:
        return None
    return Finding(
        "retention_below_promise",
        Severity.WARNING,
        server.server_id,
        contract.id,
        _clause(plan, "backup retention"),
        "the backup store keeps less than the contract promises",
        {
            "kept": len(server.kept_backups),
            "keep_last": r.keep_last,
            "missing": missing,
        },
    )


def _silent(server: ServerFacts, contract: Contract, plan: Plan, now: float) -> Finding | None:
    limit = plan.health.silent_after_s
    if server.last_seen is not None and now - server.last_seen <= limit:
        return None
    return Finding(
        "silent",
        Severity.CRITICAL if plan.monitoring_24x7 else Severity.HIGH,
        server.server_id,
        contract.id,
        _clause(plan, "health monitoring"),
        "the server has not reported within its health policy"
        if server.last_seen is not None
        else "the server has never reported",
        {
            "last_seen": server.last_seen,
            "silent_s": None if server.last_seen is None else round(now - server.last_seen),
            "silent_after_s": limit,
        },
    )


def upgrades_covered_until(contract: Contract, plan: Plan, term: Term) -> dt.date | None:
    """The last day a released version is covered (``None`` = open-ended): the end of
    coverage with free upgrades, else the day the term started (the installed version)."""
    if term.anchor is None:
        return None
    if not plan.entitlements.free_upgrades:
        return term.anchor
    if term.end is None:
        return None
    return term.end - dt.timedelta(days=1)


def _version(
    server: ServerFacts, contract: Contract, plan: Plan, term: Term, releases: Releases
) -> Finding | None:
    released = releases.get((server.product, server.version))
    if released is None:
        return None
    until = upgrades_covered_until(contract, plan, term)
    if until is None or released <= until:
        return None
    return Finding(
        "version_not_covered",
        Severity.WARNING,
        server.server_id,
        contract.id,
        _clause(plan, "free version upgrades"),
        "the server runs a version released after its upgrade coverage ended",
        {
            "product": server.product,
            "version": server.version,
            "released_on": released.isoformat(),
            "covered_until": until.isoformat(),
        },
    )


def check_support_cases(
    contract: Contract, cases: Sequence[SupportCase], now: float
) -> list[Finding]:
    """Support cases over the plan's limit, per window counted from the term's anchor."""
    plan = get_plan(contract.plan)
    ent = plan.entitlements
    if ent.support_cases_limit is None:
        return []
    from collector.contracts.terms import evaluate_term

    term = evaluate_term(contract, plan)
    if term.anchor is None:
        return []
    tz = contract.calendar_spec().timezone
    zone = ZoneInfo(tz)
    anchor = dt.datetime.combine(term.anchor, dt.time(0), zone).timestamp()
    if ent.support_cases_window_days:
        width = ent.support_cases_window_days * DAY
    else:
        end = term.end
        width = (
            float("inf")
            if end is None
            else dt.datetime.combine(end, dt.time(0), zone).timestamp() - anchor
        )
    buckets: dict[int, list[SupportCase]] = defaultdict(list)
    for case in sorted(cases, key=lambda c: c.opened_at):
        if case.contract_id != contract.id or case.opened_at < anchor or case.opened_at > now:
            continue
        idx = 0 if width == float("inf") else int((case.opened_at - anchor) // width)
        buckets[idx].append(case)
    out = []
    for idx, in_window in sorted(buckets.items()):
        if len(in_window) > ent.support_cases_limit:
            extra = in_window[ent.support_cases_limit :]
            out.append(
                Finding(
                    "support_cases_over_limit",
                    Severity.WARNING,
                    None,
                    contract.id,
                    _clause(plan, "support cases"),
                    f"{len(in_window)} support cases where the plan allows "
                    f"{ent.support_cases_limit}",
                    {
                        "window": idx,
                        "limit": ent.support_cases_limit,
                        "window_days": ent.support_cases_window_days,
                        "cases": [c.id for c in in_window],
                        "over_limit": [c.id for c in extra],
                    },
                )
            )
    return out


def index_contracts(contracts: Iterable[Contract]) -> dict[str, list[Contract]]:
    """licence id -> contracts covering it."""
    by_licence: dict[str, list[Contract]] = defaultdict(list)
    for c in contracts:
        for lic in c.licence_ids:
            by_licence[lic].append(c)
    return by_licence


def with_installation_dates(
    contracts: Iterable[Contract], servers: Iterable[ServerFacts]
) -> list[Contract]:
    """Contracts anchored at installation get the earliest installation date of a server
    with one of their licences when the contract itself does not name one."""
    installed: dict[str, dt.date] = {}
    for s in servers:
        if s.licence_id and s.installed_on is not None:
            prev = installed.get(s.licence_id)
            if prev is None or s.installed_on < prev:
                installed[s.licence_id] = s.installed_on
    out = []
    for c in contracts:
        if c.installed_on is None and get_plan(c.plan).term.anchor == "installation":
            days = [installed[lic] for lic in c.licence_ids if lic in installed]
            if days:
                c = dataclasses.replace(c, installed_on=min(days))
        out.append(c)
    return out


def evaluate(
    servers: Iterable[ServerFacts],
    contracts: Iterable[Contract],
    now: float,
    *,
    releases: Releases | None = None,
    cases: Sequence[SupportCase] = (),
    settings: CheckSettings = DEFAULT_SETTINGS,
    entitlements_only: bool = False,
) -> list[Finding]:
    """Every finding for a fleet at instant ``now`` (``entitlements_only``: see
    :func:`check_server`)."""
    with gc_paused():
        return _evaluate(
            servers,
            contracts,
            now,
            releases=releases,
            cases=cases,
            settings=settings,
            entitlements_only=entitlements_only,
        )


def _evaluate(
    servers: Iterable[ServerFacts],
    contracts: Iterable[Contract],
    now: float,
    *,
    releases: Releases | None,
    cases: Sequence[SupportCase],
    settings: CheckSettings,
    entitlements_only: bool,
) -> list[Finding]:
    server_list = list(servers)
    contract_list = with_installation_dates(contracts, server_list)
    by_licence = index_contracts(contract_list)
    findings: list[Finding] = []
    for server in server_list:
        covering = by_licence.get(server.licence_id, []) if server.licence_id else []
        findings.extend(
            check_server(
                server,
                covering,
                now,
                releases=releases,
                settings=settings,
                entitlements_only=entitlements_only,
                partner_has_contracts=bool(contract_list),
            )
        )
    if cases:
        by_contract: dict[str, list[SupportCase]] = defaultdict(list)
        for case in cases:
            by_contract[case.contract_id].append(case)
        for c in contract_list:
            if c.id in by_contract:
                findings.extend(check_support_cases(c, by_contract[c.id], now))
    return findings

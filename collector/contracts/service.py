"""The contract engine's I/O in one place: gather from storage, compute (pure), persist.

A check run reads everything in one read transaction, evaluates outside any transaction
(the writer is never blocked for the evaluation), then replaces the stored findings and
opens incidents for mapped findings in one short write. The same three steps serve the
scheduler (``Database.read``/``write``) and the CLI (``read_sync``/``write_sync``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.contracts import repository as repo
from collector.contracts import server_versions
from collector.contracts.checks import Finding, SupportCase, evaluate
from collector.contracts.covering import covering_contract
from collector.contracts.incidents import (
    Action,
    Incident,
    TransitionError,
    open_incident,
    priority_for,
)
from collector.contracts.incidents import apply as apply_action
from collector.contracts.plans import get_plan
from collector.contracts.terms import Contract, Coverage, best_contract
from collector.health import servers

log = logging.getLogger(__name__)


@dataclass
class CheckInputs:
    now: float
    fleet: repo.Fleet
    contracts: dict[tuple[str, str], Contract]
    """Every partner's current contracts by (partner, contract id)."""
    releases: dict[tuple[str, str], dt.date]
    cases: dict[str, list[SupportCase]]
    """Support cases per partner."""
    open_keys: set[str]
    priority_maps: dict[str, dict[str, str | None]]
    stored_findings: dict[str, tuple[int, str]] = field(default_factory=dict)
    version_changes: list[tuple[str, float, str, str]] = field(default_factory=list)
    """Servers' versions seen for the first time or changed (a run at the present)."""


@dataclass
class CheckResult:
    run_at: float
    findings: list[Finding]
    new_incidents: list[tuple[Incident, str, str]] = field(default_factory=list)
    """(incident, partner, finding key)."""
    cleared_keys: list[str] = field(default_factory=list)
    """Finding keys of open incidents whose finding this run no longer found."""
    partner_of_server: dict[str, str] = field(default_factory=dict)
    partner_of_contract: dict[str, str] = field(default_factory=dict)
    finding_partners: list[str] | None = None
    """Whose each finding is (same order as ``findings``)."""
    failed_partners: set[str] = field(default_factory=set)
    """Partners whose evaluation failed: their stored findings are left as they are."""
    version_changes: list[tuple[str, float, str, str]] = field(default_factory=list)
    """Rows for :mod:`collector.contracts.server_versions`, written with the findings."""

    def to_json(self) -> dict[str, object]:
        return {
            "run_at": self.run_at,
            "findings": [f.to_json() for f in self.findings],
            "count": len(self.findings),
            "incidents_opened": [i.id for i, _, _ in self.new_incidents],
        }


def gather(conn: Any, now: float) -> CheckInputs:
    fleet = repo.fleet_facts(conn, now)
    partners = set(fleet.partner_of_server.values())
    return CheckInputs(
        now=now,
        fleet=fleet,
        contracts=repo.all_current_contracts(conn),
        releases=repo.load_releases(conn),
        cases=repo.support_cases_by_partner(conn),
        open_keys=repo.open_finding_keys(conn),
        priority_maps={p: repo.priority_map(conn, p) for p in partners},
        stored_findings=repo.stored_findings(conn),
        version_changes=_version_changes(conn, fleet, now) if repo.is_present(now) else [],
    )


def _version_changes(conn: Any, fleet: repo.Fleet, now: float) -> list[tuple[str, float, str, str]]:
    current = ((f.server_id, f.enrolled_at or now, f.product, f.version) for f in fleet.servers)
    return server_versions.changes(current, server_versions.latest(conn), now)


def compute(inputs: CheckInputs, *, open_incidents: bool = True) -> CheckResult:
    """Evaluate each partner's servers against that partner's contracts only: a contract
    of another partner naming the same licence id never covers a server."""
    contracts_of: dict[str, dict[str, Contract]] = {}
    for (partner, cid), c in inputs.contracts.items():
        contracts_of.setdefault(partner, {})[cid] = c
    findings, finding_partners, failed = _evaluate_partners(inputs, contracts_of)
    result = CheckResult(
        run_at=inputs.now,
        findings=findings,
        partner_of_server=inputs.fleet.partner_of_server,
        finding_partners=finding_partners,
        failed_partners=failed,
        version_changes=inputs.version_changes,
    )
    if open_incidents:
        result.cleared_keys.extend(_cleared_keys(inputs, findings, failed))
        result.new_incidents.extend(
            _new_incidents(inputs, findings, finding_partners, contracts_of)
        )
    return result


def _evaluate_partners(
    inputs: CheckInputs, contracts_of: Mapping[str, Mapping[str, Contract]]
) -> tuple[list[Finding], list[str], set[str]]:
    """(findings, whose each is, partners whose evaluation failed)."""
    servers_of: dict[str, list[Any]] = {}
    for s in inputs.fleet.servers:
        servers_of.setdefault(inputs.fleet.partner_of_server.get(s.server_id, ""), []).append(s)
    findings: list[Finding] = []
    finding_partners: list[str] = []
    failed: set[str] = set()
    for partner in sorted(set(servers_of) | set(contracts_of)):
        try:
            found = evaluate(
                servers_of.get(partner, []),
                contracts_of.get(partner, {}).values(),
                inputs.now,
                releases=inputs.releases,
                cases=inputs.cases.get(partner, []),
            )
        except (ArithmeticError, ValueError, LookupError, TypeError):
            # One partner's unreadable contract (stored before its values were checked)
            # must not stop the checks of every other partner; its findings are kept.
            log.exception("contract checks of partner %r failed; the others are checked", partner)
            failed.add(partner)
            continue
        findings.extend(found)
        finding_partners.extend([partner] * len(found))
    return findings, finding_partners, failed


def _cleared_keys(inputs: CheckInputs, findings: list[Finding], failed: set[str]) -> list[str]:
    """Open findings' keys no longer found (health findings and failed partners' aside)."""
    present = {f"{f.server_id}:{f.kind}" for f in findings if f.server_id is not None}
    cleared = []
    for key in sorted(inputs.open_keys):
        sid, _, kind = key.partition(":")
        if kind in HEALTH_KINDS or key in present:
            continue
        if inputs.fleet.partner_of_server.get(sid) in failed:
            continue
        cleared.append(key)
    return cleared


def _new_incidents(
    inputs: CheckInputs,
    findings: list[Finding],
    finding_partners: list[str],
    contracts_of: Mapping[str, Mapping[str, Contract]],
) -> list[tuple[Incident, str, str]]:
    """An incident for each new finding of a server under a contract whose plan gives its
    kind a priority; its key joins ``inputs.open_keys``."""
    opened_at = dt.datetime.fromtimestamp(inputs.now, dt.UTC)
    new: list[tuple[Incident, str, str]] = []
    for f, partner in zip(findings, finding_partners, strict=True):
        if f.server_id is None or f.contract_id is None:
            continue
        contract = contracts_of.get(partner, {}).get(f.contract_id)
        if contract is None:
            continue
        key = f"{f.server_id}:{f.kind}"
        if key in inputs.open_keys:
            continue
        plan = get_plan(contract.plan)
        priority = priority_for(f.kind, plan, inputs.priority_maps.get(partner))
        if priority is None:
            continue
        inc = open_incident(
            new_incident_id(),
            plan,
            priority,
            opened_at,
            calendar=contract.calendar_spec(),
            contract_id=contract.id,
            server_id=f.server_id,
            title=f.message,
            source=f"finding:{f.kind}",
        )
        inputs.open_keys.add(key)
        new.append((inc, partner, key))
    return new


WRITE_CHUNK = 500
"""Operations per write: the writer is shared with ingest, so a check run never holds it
for long (about 25 ms per chunk measured)."""


def persist_steps(stored: Mapping[str, tuple[int, str]], result: CheckResult) -> list[Any]:
    """The writes that bring the stored findings to ``result`` and open its incidents, as
    a list of short ``fn(conn)`` pieces."""
    changes = repo.diff_findings(
        stored,
        result.findings,
        result.run_at,
        result.partner_of_server,
        result.partner_of_contract,
        result.finding_partners,
        keep_partners=result.failed_partners,
    )
    steps: list[Any] = [
        (lambda c, part=part: repo.apply_finding_changes(c, part))
        for part in repo.chunked(changes, WRITE_CHUNK)
    ]
    incs = result.new_incidents
    for start in range(0, len(incs), WRITE_CHUNK):
        part_incs = incs[start : start + WRITE_CHUNK]

        def write_incidents(c: Any, part_incs: list[tuple[Incident, str, str]] = part_incs) -> None:
            for inc, partner, key in part_incs:
                repo.insert_incident(c, inc, partner, result.run_at, key)

        steps.append(write_incidents)
    for start in range(0, len(result.cleared_keys), WRITE_CHUNK):
        keys = result.cleared_keys[start : start + WRITE_CHUNK]

        def clear(c: Any, keys: list[str] = keys) -> None:
            for key in keys:
                clear_finding_incidents(c, key, result.run_at)

        steps.append(clear)
    for start in range(0, len(result.version_changes), WRITE_CHUNK):
        rows = result.version_changes[start : start + WRITE_CHUNK]
        steps.append(lambda c, rows=rows: server_versions.record(c, rows))
    return steps


def persist(conn: Any, result: CheckResult) -> None:
    """All of :func:`persist_steps` in one transaction (tests, small fleets)."""
    for step in persist_steps(repo.stored_findings(conn), result):
        step(conn)


def findings_for_partner(conn: Any, partner: str, now: float) -> list[Finding]:
    """Live evaluation of one partner's servers and contracts at instant ``now`` (any past
    day re-evaluated with the current contract record); nothing is stored."""
    fleet = repo.fleet_facts(conn, now, partner=partner)
    contracts = repo.current_contracts(conn, partner)
    cases = repo.support_cases(conn, partner)
    return evaluate(
        fleet.servers, contracts.values(), now, releases=repo.load_releases(conn), cases=cases
    )


def new_incident_id() -> str:
    return "INC-" + secrets.token_hex(5).upper()


def run_checks_sync(
    db: Any, now: float | None = None, *, open_incidents: bool = True
) -> CheckResult:
    """One check run for the CLI (``vigil-collector check``)."""
    now = time.time() if now is None else now
    inputs = db.read_sync(lambda c: gather(c, now))
    result = compute(inputs, open_incidents=open_incidents)
    for step in persist_steps(inputs.stored_findings, result):
        db.write_sync(step)
    return result


async def run_checks(db: Any, now: float | None = None) -> CheckResult:
    """One check run for the scheduler."""
    now = time.time() if now is None else now
    inputs = await db.read(lambda c: gather(c, now))
    # Seconds of pure Python for a large fleet: off the event loop, so requests keep being
    # served (they share the GIL with it, in 5 ms slices).
    result = await asyncio.get_running_loop().run_in_executor(None, compute, inputs)
    for step in persist_steps(inputs.stored_findings, result):
        await db.write(step)
    return result


# --- entitlement answers for the rest of the collector ------------------------------------


@dataclass(frozen=True)
class EntitlementAnswer:
    entitled: bool
    reason: str = ""


def entitlement(
    conn: Any, server_id: str, what: str, now: float | None = None
) -> EntitlementAnswer:
    """Is ``server_id`` entitled to ``what`` (``online_backup`` or ``health_monitoring``)?

    A partner without any contract on record is not checked (entitled: the contract
    engine is not in use for them). Otherwise the server's licence must be covered (active
    or grace) by a contract whose plan includes ``what``.
    """
    now = time.time() if now is None else now
    found = repo.server_licence(conn, server_id)
    if found is None:
        return EntitlementAnswer(False, "server is not enrolled")
    licence, partner = found
    if not repo.partner_has_contracts(conn, partner):
        return EntitlementAnswer(True)
    words = what.replace("_", " ")
    if not licence:
        return EntitlementAnswer(
            False, f"{words} needs a contract, and this server reported no licence id"
        )
    covering = covering_contract(conn, partner, licence, now)
    if covering is None:
        return EntitlementAnswer(False, f"no maintenance contract covers licence {licence}")
    contract, status, plan = covering.contract, covering.status, covering.plan
    if not covering.in_force:
        return EntitlementAnswer(
            False, f"contract {contract.id} ({plan.title}) is {status.value} for licence {licence}"
        )
    if not getattr(plan.entitlements, what):
        return EntitlementAnswer(
            False, f"{words} is not part of {plan.title} (contract {contract.id})"
        )
    return EntitlementAnswer(True)


class EntitlementCache:
    """Answers of :func:`entitlement` kept for ``ttl`` seconds per (server, what), for hot
    paths (every report's ack carries ``AgentSettings``): one lookup costs a few point
    queries, a cached one a dict access. A contract change shows after at most ``ttl``;
    :meth:`clear` drops everything (call it after an import)."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._answers: dict[tuple[str, str], tuple[float, EntitlementAnswer]] = {}

    def get(
        self, conn: Any, server_id: str, what: str, now: float | None = None
    ) -> EntitlementAnswer:
        now = time.time() if now is None else now
        key = (server_id, what)
        hit = self._answers.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        answer = entitlement(conn, server_id, what, now)
        if len(self._answers) > 200_000:
            self._answers.clear()
        self._answers[key] = (now + self.ttl, answer)
        return answer

    def clear(self) -> None:
        self._answers.clear()


async def backup_entitlement(db: Any, server_id: str) -> Any:
    """The backups module's ``ENTITLEMENT_CHECK`` hook, answered from contracts."""
    from collector.entitlements import Entitlement

    ans = await db.read(lambda c: entitlement(c, server_id, "online_backup"))
    return Entitlement(ans.entitled, ans.reason)


HEALTH_KINDS = frozenset({"camera_offline", "volume_full_48h", "disk_failing"})
"""Findings made by ingest (not by the check run): ingest clears their incidents."""


def clear_finding_incidents(
    conn: Any, key: str, now: float, note: str = "the finding cleared"
) -> list[str]:
    """Move the open incidents opened for finding ``key`` (``server:kind``) to resolved,
    awaiting the customer's acceptance. Inside ``Database.write``; returns their ids."""
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    done = []
    for inc in repo.open_incidents_for_key(conn, key):
        try:
            new = apply_action(
                inc, Action.CLEAR, max(at, inc.events[-1].at), by="collector", note=note
            )
        except TransitionError:
            continue  # paused by a person, or already resolved: left to them
        repo.save_incident(conn, new, now)
        done.append(inc.id)
    return done


def open_incident_for_finding(
    conn: Any, server_id: str, kind: str, title: str, now: float | None = None
) -> str | None:
    """For health findings made elsewhere in the collector (e.g. ``volume_full_48h``,
    ``camera_offline``): open an incident on the server's covering contract at the
    partner's priority for ``kind``, unless one for this server and kind is still open.
    Call inside ``Database.write``. Returns the new incident's id, or None."""
    now = time.time() if now is None else now
    found = repo.server_licence(conn, server_id)
    if found is None or not found[0]:
        return None
    licence, partner = found
    if licence is None:
        return None
    key = f"{server_id}:{kind}"
    if key in repo.open_finding_keys(conn):
        return None
    covering = covering_contract(conn, partner, licence, now)
    if covering is None or not covering.in_force:
        return None
    contract, plan = covering.contract, covering.plan
    priority = priority_for(kind, plan, repo.priority_map(conn, partner))
    if priority is None:
        return None
    inc = open_incident(
        new_incident_id(),
        plan,
        priority,
        dt.datetime.fromtimestamp(now, dt.UTC),
        calendar=contract.calendar_spec(),
        contract_id=contract.id,
        server_id=server_id,
        title=title,
        source=f"finding:{kind}",
    )
    repo.insert_incident(conn, inc, partner, now, key)
    return inc.id


def coverage_by_server(
    conn: Any, now: float | None = None, partner: str | None = None
) -> dict[str, dict[str, Any]]:
    """Per enrolled server: the contract that counts today and its coverage, for the fleet
    view ("whose contract ends soon"). Servers without a covering contract get
    ``{"coverage": "none"}``."""
    from zoneinfo import ZoneInfo

    from collector.contracts.checks import index_contracts

    now = time.time() if now is None else now
    rows = servers.active_licences_with_partner(conn, partner)
    # Licence -> contracts per partner: a server is covered only by its own partner's.
    by_partner: dict[str, dict[str, list[Contract]]] = {}
    if partner is not None:
        by_partner[partner] = index_contracts(
            repo.with_enrollment_dates(conn, repo.current_contracts(conn, partner).values())
        )
    else:
        mine: dict[str, list[Contract]] = {}
        for c in repo.with_enrollment_dates(conn, repo.all_current_contracts(conn).values()):
            mine.setdefault(c.partner, []).append(c)
        by_partner = {owner: index_contracts(cs) for owner, cs in mine.items()}
    out: dict[str, dict[str, Any]] = {}
    days: dict[str, dt.date] = {}
    for sid, licence, owner in ((r[0], r[1], r[2]) for r in rows):
        covering = by_partner.get(owner, {}).get(licence or "", [])
        if not covering:
            out[sid] = {"coverage": "none"}
            continue
        tz = covering[0].calendar_spec().timezone
        today = days.get(tz)
        if today is None:
            today = days[tz] = dt.datetime.fromtimestamp(now, ZoneInfo(tz)).date()
        out[sid] = dict(_coverage_answer(tuple(covering), today))
    return out


_ANSWERS: dict[tuple[tuple[Contract, ...], dt.date], dict[str, Any]] = {}
_ANSWERS_MAX = 100_000


def _coverage_answer(covering: tuple[Contract, ...], today: dt.date) -> dict[str, Any]:
    """The fleet view's coverage of a server whose licence ``covering`` names, on
    ``today``. Contracts are immutable, so the answer is kept for the same contracts and
    day (the caller copies it); a term that cannot be computed is shown as invalid."""
    key = (covering, today)
    answer = _ANSWERS.get(key)
    if answer is not None:
        return answer
    try:
        chosen = best_contract(covering, today)
        assert chosen is not None
        contract, term, status = chosen
        deadline = term.last_day_to_cancel(today) if status is Coverage.ACTIVE else None
    except (ArithmeticError, ValueError, LookupError):
        # A stored contract whose term cannot be computed: shown, never a failed list.
        return {"coverage": "invalid"}
    answer = {
        "coverage": status.value,
        "contract_id": contract.id,
        "plan": contract.plan,
        "customer": contract.customer,
        "last_covered_day": None
        if term.end is None
        else (term.end - dt.timedelta(days=1)).isoformat(),
        "days_left": None if term.end is None else (term.end - today).days,
        "last_day_to_cancel": None if deadline is None else deadline.isoformat(),
    }
    if len(_ANSWERS) >= _ANSWERS_MAX:
        _ANSWERS.clear()
    _ANSWERS[key] = answer
    return answer


def contract_backup_policy(conn: Any, server_id: str, now: float | None = None) -> Any:
    """The backup policy (interval, tolerance, retention) the server's contract promises,
    or None (no covering contract, or a plan without online backup). For the backups
    module: retention must keep at least this, and the schedule run at least this often."""
    now = time.time() if now is None else now
    found = repo.server_licence(conn, server_id)
    if found is None or not found[0]:
        return None
    covering = covering_contract(conn, found[1], found[0], now)
    if covering is None or not covering.in_force:
        return None
    plan = covering.plan
    return plan.backup if plan.entitlements.online_backup else None


def sma_in_force(conn: Any, server_id: str, now: float | None = None) -> bool:
    """Whether a software maintenance agreement (a plan with SMA pricing) covers the server
    now, active or in grace: the edition upgrade then credits the old edition in full."""
    found = repo.server_licence(conn, server_id)
    if found is None or not found[0]:
        return False
    covering = covering_contract(conn, found[1], found[0], time.time() if now is None else now)
    if covering is None or not covering.in_force:
        return False
    try:
        return covering.plan.pricing is not None
    except KeyError:
        return False


def monitoring_entitled(conn: Any, server_id: str) -> EntitlementAnswer:
    """For ``AgentSettings.monitoring_entitled`` (and its ``notice``)."""
    return entitlement(conn, server_id, "health_monitoring")


def priority_map_for(conn: Any, partner: str) -> Mapping[str, str | None]:
    return repo.priority_map(conn, partner)

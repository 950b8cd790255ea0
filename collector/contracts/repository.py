"""Contract engine storage: repository functions over a connection (``Database.read`` /
``Database.write`` run them). SQL only here; the logic is in the pure modules."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from collector.backups import catalog
from collector.contracts import server_versions
from collector.contracts.calendar import CalendarSpec
from collector.contracts.checks import Finding, ServerFacts, SupportCase
from collector.contracts.codec import (
    contract_from_dict,
    contract_to_dict,
    events_from_list,
    events_to_list,
)
from collector.contracts.importer import ImportPlan, Release
from collector.contracts.incidents import Incident, replay
from collector.contracts.terms import Contract, ContractVersion
from collector.health import history as report_history
from collector.health import servers
from collector.notify import sources as notify_sources

Conn = Any
DAY = 86400.0


def _dumps(v: object) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True, default=str)


# --- contracts -------------------------------------------------------------------------

_DECODED: dict[str, Contract] = {}
_DECODED_MAX = 100_000
"""Stored contract texts already decoded, at most this many (then dropped and refilled)."""


def _contract(data: Any) -> Contract:
    """The contract stored as ``data`` (its JSON text). The same text always decodes to
    the same immutable contract, so each distinct text is decoded once and kept: a page
    over 10,000 contracts would otherwise spend most of its time in ``json.loads``. The
    kept object is also the key of the evaluated term, so both are computed once."""
    if not isinstance(data, str):
        return contract_from_dict(json.loads(data) if isinstance(data, bytes) else data)
    c = _DECODED.get(data)
    if c is None:
        c = contract_from_dict(json.loads(data))
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[data] = c
    return c


def current_contracts(conn: Conn, partner: str) -> dict[str, Contract]:
    """One partner's current contracts by id (ids are unique per partner only)."""
    rows = conn.execute("SELECT data FROM contracts WHERE partner = ?", (partner,)).fetchall()
    out = {}
    for r in rows:
        c = _contract(r[0])
        out[c.id] = c
    return out


def all_current_contracts(conn: Conn) -> dict[tuple[str, str], Contract]:
    """Every partner's current contracts by (partner, id), for the check run and the
    administrator's import (which may name several partners)."""
    out = {}
    for r in conn.execute("SELECT data FROM contracts").fetchall():
        c = _contract(r[0])
        out[(c.partner, c.id)] = c
    return out


def get_contract(conn: Conn, partner: str, contract_id: str) -> Contract | None:
    r = conn.execute(
        "SELECT data FROM contracts WHERE partner = ? AND id = ?", (partner, contract_id)
    ).fetchone()
    return None if r is None else _contract(r[0])


def partners_with_contract(conn: Conn, contract_id: str) -> list[str]:
    """The partners that have (or had) a contract ``contract_id``: for the administrator's
    CLI, which names a contract by id and must not guess between partners."""
    return sorted(
        {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT partner FROM contract_versions WHERE contract_id = ?",
                (contract_id,),
            )
        }
    )


def contract_partners(conn: Conn) -> set[str]:
    """The partner names that hold a contract (known partners or not yet)."""
    return {r[0] for r in conn.execute("SELECT DISTINCT partner FROM contracts")}


def customer_contracts(conn: Conn, partner: str, customer: str) -> tuple[set[str], set[str]]:
    """(contract ids, licence ids they name) of the partner's contracts with ``customer``."""
    ids = {
        r[0]
        for r in conn.execute(
            "SELECT id FROM contracts WHERE partner = ? AND customer = ?", (partner, customer)
        )
    }
    licences = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT l.licence_id FROM contract_licences l JOIN contracts c "
            "ON c.partner = l.partner AND c.id = l.contract_id "
            "WHERE l.partner = ? AND c.customer = ?",
            (partner, customer),
        )
    }
    return ids, licences


def contracts_fingerprint(conn: Conn, partner: str | None) -> list[Any]:
    """Contracts are only added, replaced by a higher version (``updated_at``: the write's
    time) or removed: their count, version sum and newest write tell any change (of one
    partner's, or of all)."""
    sql = "SELECT count(*), sum(version), max(updated_at) FROM contracts"
    if partner is None:
        return conn.execute(sql).fetchall()
    return conn.execute(sql + " WHERE partner = ?", (partner,)).fetchall()


def contract_totals(conn: Conn, partner: str | None) -> list[Any]:
    """``(partner, count, version sum, newest write)`` per partner (or of ``partner``
    alone), in partner order: what a kept monthly report compares to tell a contract
    changed."""
    return _totals_by_partner(conn, "count(*), sum(version), max(updated_at)", "contracts", partner)


def incident_totals(conn: Conn, partner: str | None) -> list[Any]:
    """``(partner, count, sum and newest of the update times)`` per partner (or of
    ``partner`` alone), in partner order: an incident opened or updated changes them."""
    return _totals_by_partner(
        conn, "count(*), sum(updated_at), max(updated_at)", "incidents", partner
    )


def _totals_by_partner(conn: Conn, totals: str, table: str, partner: str | None) -> list[Any]:
    where = "" if partner is None else " WHERE partner = ?"
    sql = f"SELECT partner, {totals} FROM {table}{where} GROUP BY partner ORDER BY partner"
    return conn.execute(sql, () if partner is None else (partner,)).fetchall()


def server_licence(conn: Conn, server_id: str) -> tuple[str | None, str] | None:
    """``(licence id, partner name)`` of an enrolled server, or None if it is unknown."""
    return servers.licence_and_partner(conn, server_id)


def contracts_for_licence(conn: Conn, partner: str, licence_id: str) -> list[Contract]:
    """``partner``'s current contracts covering ``licence_id``; another partner's contract
    naming the same licence id never counts."""
    rows = conn.execute(
        "SELECT c.data FROM contract_licences l JOIN contracts c "
        "ON c.partner = l.partner AND c.id = l.contract_id "
        "WHERE l.partner = ? AND l.licence_id = ?",
        (partner, licence_id),
    ).fetchall()
    return [_contract(r[0]) for r in rows]


def with_enrollment_dates(conn: Conn, contracts: Iterable[Contract]) -> list[Contract]:
    """Contracts anchored at installation that name no installation date get the
    enrollment day (UTC) of the partner's first server with one of their licences: the
    same rule the checks and reports apply, so every view shows the same coverage."""
    out = list(contracts)
    todo = [
        i
        for i, c in enumerate(out)
        if c.installed_on is None and c.licence_ids and _anchored_at_installation(c)
    ]
    if len(todo) > _FEW:
        first = _first_enrollments(conn, {out[i].partner for i in todo})
        found = {
            i: min(
                (
                    first[(out[i].partner, lic)]
                    for lic in out[i].licence_ids
                    if (out[i].partner, lic) in first
                ),
                default=None,
            )
            for i in todo
        }
    else:
        found = {i: _first_enrollment(conn, out[i]) for i in todo}
    for i, at in found.items():
        if at is not None:
            day = dt.datetime.fromtimestamp(float(at), dt.UTC).date()
            out[i] = dataclasses.replace(out[i], installed_on=day)
    return out


_FEW = 2
"""Up to this many contracts to date, one query each; more, one query per partner."""


def _first_enrollment(conn: Conn, c: Contract) -> float | None:
    return servers.first_enrollment(conn, c.partner, c.licence_ids)


def _first_enrollments(conn: Conn, partners: Iterable[str]) -> dict[tuple[str, str], float]:
    """(partner, licence id) -> the first enrollment of a server with it, per partner."""
    return {
        (name, lic): at
        for name in partners
        for lic, at in servers.first_enrollments(conn, name).items()
    }


def _anchored_at_installation(c: Contract) -> bool:
    try:
        return c.plan_obj().term.anchor == "installation"
    except KeyError:
        return False


def partner_has_contracts(conn: Conn, partner: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM contracts WHERE partner = ? LIMIT 1", (partner,)).fetchone()
        is not None
    )


def _version_rows(conn: Conn, partner: str, contract_id: str) -> list[Any]:
    return conn.execute(
        "SELECT version, valid_from, removed, data, source FROM contract_versions "
        "WHERE partner = ? AND contract_id = ? ORDER BY version",
        (partner, contract_id),
    ).fetchall()


def history(conn: Conn, partner: str, contract_id: str) -> list[ContractVersion]:
    """Every version of ``partner``'s contract ``contract_id`` (never another partner's)."""
    return [
        ContractVersion(
            dt.datetime.fromtimestamp(r[1], dt.UTC),
            None if r[2] else _contract(r[3]),
            r[4],
        )
        for r in _version_rows(conn, partner, contract_id)
    ]


def history_json(conn: Conn, partner: str, contract_id: str) -> list[dict[str, object]]:
    return [
        {
            "version": r[0],
            "valid_from": dt.datetime.fromtimestamp(r[1], dt.UTC).isoformat(),
            "removed": bool(r[2]),
            "contract": None if r[2] else json.loads(r[3]),
            "source": r[4],
        }
        for r in _version_rows(conn, partner, contract_id)
    ]


def record_version(
    conn: Conn,
    contract_id: str,
    partner: str,
    contract: Contract | None,
    now: float,
    source: str,
) -> int:
    """Append a version (``None`` = removed) of ``partner``'s contract and update the
    current-contract cache; nothing of another partner is read or written."""
    if contract is not None and (contract.partner != partner or contract.id != contract_id):
        raise ValueError(
            f"contract {contract.id!r} of {contract.partner!r} recorded as "
            f"{contract_id!r} of {partner!r}"
        )
    r = conn.execute(
        "SELECT MAX(version) FROM contract_versions WHERE partner = ? AND contract_id = ?",
        (partner, contract_id),
    ).fetchone()
    version = (r[0] or 0) + 1
    data = _dumps(contract_to_dict(contract)) if contract is not None else "{}"
    conn.execute(
        "INSERT INTO contract_versions (partner, contract_id, version, valid_from, removed, "
        "data, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (partner, contract_id, version, now, 0 if contract else 1, data, source),
    )
    conn.execute(
        "DELETE FROM contract_licences WHERE partner = ? AND contract_id = ?",
        (partner, contract_id),
    )
    conn.execute("DELETE FROM contracts WHERE partner = ? AND id = ?", (partner, contract_id))
    if contract is not None:
        conn.execute(
            "INSERT INTO contracts (partner, id, version, customer, plan, data, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (partner, contract.id, version, contract.customer, contract.plan, data, now),
        )
        for lic in sorted(set(contract.licence_ids)):
            conn.execute(
                "INSERT INTO contract_licences (partner, licence_id, contract_id) VALUES (?, ?, ?)",
                (partner, lic, contract.id),
            )
    return version


def apply_import(conn: Conn, plan: ImportPlan, now: float, source: str) -> None:
    """Write exactly what :func:`~collector.contracts.importer.plan_import` decided."""
    for c in plan.added:
        record_version(conn, c.id, c.partner, c, now, source)
    for c, _ in plan.changed:
        record_version(conn, c.id, c.partner, c, now, source)
    for c in plan.removed:
        record_version(conn, c.id, c.partner, None, now, source)


# --- releases --------------------------------------------------------------------------


def load_releases(conn: Conn) -> dict[tuple[str, str], dt.date]:
    return {
        (r[0], r[1]): dt.date.fromisoformat(r[2])
        for r in conn.execute("SELECT product, version, released_on FROM releases")
    }


def release_rows(conn: Conn) -> list[Any]:
    """Every release as stored, ``(product, version, released_on)`` in that order."""
    return conn.execute(
        "SELECT product, version, released_on FROM releases ORDER BY product, version"
    ).fetchall()


def upsert_releases(conn: Conn, releases: Iterable[Release]) -> tuple[int, int]:
    """(added, changed)."""
    current = load_releases(conn)
    added = changed = 0
    for r in releases:
        old = current.get((r.product, r.version))
        if old == r.released_on:
            continue
        if old is None:
            added += 1
        else:
            changed += 1
        conn.execute(
            "DELETE FROM releases WHERE product = ? AND version = ?", (r.product, r.version)
        )
        conn.execute(
            "INSERT INTO releases (product, version, released_on) VALUES (?, ?, ?)",
            (r.product, r.version, r.released_on.isoformat()),
        )
    return added, changed


# --- module prices, partner settings ---------------------------------------------------


def module_prices(conn: Conn) -> dict[str, Decimal]:
    return {r[0]: Decimal(r[1]) for r in conn.execute("SELECT module, price FROM module_prices")}


def set_module_prices(conn: Conn, prices: Mapping[str, Decimal], now: float) -> None:
    for module, price in prices.items():
        conn.execute("DELETE FROM module_prices WHERE module = ?", (module,))
        conn.execute(
            "INSERT INTO module_prices (module, price, updated_at) VALUES (?, ?, ?)",
            (module, str(price), now),
        )


def priority_map(conn: Conn, partner: str) -> dict[str, str | None]:
    r = conn.execute(
        "SELECT priority_map FROM contract_partner_settings WHERE partner = ?", (partner,)
    ).fetchone()
    return {} if r is None else json.loads(r[0])


def set_priority_map(
    conn: Conn, partner: str, mapping: Mapping[str, str | None], now: float
) -> None:
    conn.execute("DELETE FROM contract_partner_settings WHERE partner = ?", (partner,))
    conn.execute(
        "INSERT INTO contract_partner_settings (partner, priority_map, updated_at) "
        "VALUES (?, ?, ?)",
        (partner, _dumps(dict(mapping)), now),
    )


# --- the fleet as plain data -------------------------------------------------------------


@dataclass
class Fleet:
    servers: list[ServerFacts]
    partner_of_server: dict[str, str]
    report_times: dict[str, list[float]]


@contextlib.contextmanager
def plain_rows(conn: Conn) -> Iterator[None]:
    """Tuples instead of ``sqlite3.Row`` for bulk reads (about 3x faster over a million
    rows); other backends' connections are left as they are."""
    if not isinstance(conn, sqlite3.Connection):
        yield
        return
    saved = conn.row_factory
    conn.row_factory = None
    try:
        yield
    finally:
        conn.row_factory = saved


def is_present(now: float) -> bool:
    """Whether an instant the checks evaluate is the present (within an hour), for which
    what is stored now holds, or the past."""
    return abs(time.time() - now) < 3600


def fleet_facts(
    conn: Conn,
    now: float,
    *,
    window_days: int = 31,
    partner: str | None = None,
    with_reports: bool = False,
    since: float | None = None,
    with_kept: bool | None = None,
) -> Fleet:
    """Everything the checks need about enrolled servers, in a few bulk queries.

    The backups kept now say nothing about what was kept on an earlier day (retention has
    pruned since), so by default they are loaded only when ``now`` is the present (within
    an hour); otherwise the retention check is skipped. Likewise each server's software:
    its stored state's at the present, the version it ran then
    (:mod:`collector.contracts.server_versions`) at an instant in the past.
    """
    present = is_present(now)
    with plain_rows(conn):
        return _fleet_facts(
            conn,
            now,
            window_days,
            partner,
            with_reports,
            since,
            present if with_kept is None else with_kept,
            present,
        )


def _fleet_facts(
    conn: Conn,
    now: float,
    window_days: int,
    partner: str | None,
    with_reports: bool,
    since: float | None,
    with_kept: bool,
    present: bool,
) -> Fleet:
    since = now - window_days * DAY if since is None else since
    rows = servers.active_with_partner(conn, partner)
    # Every server of the partner, revoked ones too, when one partner's fleet is asked for.
    scope = None if partner is None else servers.ids_of_partner_named(conn, partner)
    activity = _Activity(
        attempted=catalog.attempted_in_window(conn, scope, since, now),
        made=catalog.stored_times_in_window(conn, since, now),
        kept=catalog.verified_times(conn, now) if with_kept else None,
        reports=_report_times(conn, scope, since, now) if with_reports else {},
    )
    first_machine = _first_machines(conn)
    facts = [_server_facts(r, since, first_machine, activity) for r in rows]
    if not present:
        scope_ids = None if partner is None else [f.server_id for f in facts]
        facts = _versions_at(facts, server_versions.at(conn, now, scope_ids))
    return Fleet(facts, {r[0]: r[7] for r in rows}, activity.reports)


def _versions_at(
    facts: list[ServerFacts], versions: Mapping[str, tuple[str, str]]
) -> list[ServerFacts]:
    out = []
    for f in facts:
        then = versions.get(f.server_id)
        if then is not None and then != (f.product, f.version):
            f = dataclasses.replace(f, product=then[0], version=then[1])
        out.append(f)
    return out


@dataclass
class _Activity:
    """What the servers did in the window, by server id (times sorted)."""

    attempted: set[str]
    made: dict[str, list[float]]
    kept: dict[str, list[float]] | None
    """Backups kept now; None when not loaded (``now`` is not the present)."""
    reports: dict[str, list[float]]


def _server_facts(
    r: Sequence[Any],
    since: float,
    first_machine: Mapping[tuple[int, str], tuple[float, str]],
    activity: _Activity,
) -> ServerFacts:
    """One row of :func:`collector.health.servers.active_with_partner` as the checks see it."""
    sid, lic = r[0], r[2]
    software = stored_software(r[6])
    kept = activity.kept
    return ServerFacts(
        server_id=sid,
        licence_id=lic,
        machine_id=r[1],
        licensed_machine_id=(first_machine.get((r[8], lic), (0, None))[1] if lic else None),
        installed_on=dt.datetime.fromtimestamp(r[4], dt.UTC).date(),
        enrolled_at=float(r[4]),
        last_seen=r[3],
        uses_monitoring=bool(r[5]) and r[3] is not None and r[3] >= since,
        uses_backup=sid in activity.attempted or bool(activity.made.get(sid)),
        product=str(software.get("product") or ""),
        version=str(software.get("version") or ""),
        backups=activity.made.get(sid, []),
        kept_backups=None if kept is None else kept.get(sid, []),
    )


def _first_machines(conn: Conn) -> dict[tuple[int, str], tuple[float, str]]:
    """(partner id, licence id) -> (enrolled at, machine id) of the machine the licence was
    first bound to, per partner: another partner's server claiming the same licence id says
    nothing about this partner's hardware."""
    first: dict[tuple[int, str], tuple[float, str]] = {}
    for partner_id, lic, machine, enrolled_at in servers.licensed_machines(conn):
        prev = first.get((partner_id, lic))
        if prev is None or enrolled_at < prev[0]:
            first[(partner_id, lic)] = (enrolled_at, machine)
    return first


def _report_times(
    conn: Conn, scope: Sequence[str] | None, since: float, now: float
) -> dict[str, list[float]]:
    """Health report times in the window, of ``scope``'s servers or all."""
    reports: dict[str, list[float]] = defaultdict(list)
    for sid, collected in report_history.times_in_window(conn, scope, since, now):
        reports[sid].append(float(collected))
    for times in reports.values():
        times.sort()
    return dict(reports)


class _StoredState(msgspec.Struct):
    """The one part of a server's stored state the checks read (the rest is skipped)."""

    software: Any = None


_decode_software = msgspec.json.Decoder(_StoredState).decode


def stored_software(text: str | None) -> dict[str, Any]:
    """The ``software`` object of a stored state, ``{}`` when there is none or the state
    is not a JSON object."""
    try:
        software = _decode_software(text or "{}").software
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}
    return software if isinstance(software, dict) else {}


def _json_or_empty(text: str | None) -> dict[str, Any]:
    try:
        v = json.loads(text or "{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def server_modules(conn: Conn, server_id: str) -> list[str]:
    r = servers.partner_and_state(conn, server_id)
    if r is None:
        return []
    return [str(m) for m in (_json_or_empty(r[1]).get("software") or {}).get("modules", [])]


# --- findings ----------------------------------------------------------------------------


def finding_key(f: Finding, partner: str = "") -> str:
    """What identifies a finding from one run to the next. The partner is part of it: two
    partners may each have a contract of the same id (a support-case finding names no
    server)."""
    window = f.evidence.get("window", "") if f.kind == "support_cases_over_limit" else ""
    return f"{partner}|{f.server_id or ''}|{f.contract_id or ''}|{f.kind}|{window}"


@dataclass
class FindingChanges:
    inserts: list[tuple[Any, ...]]
    updates: list[tuple[Any, ...]]
    deletes: list[int]

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.deletes)


def stored_findings(conn: Conn) -> dict[str, tuple[int, str]]:
    """fkey -> (row id, digest) of the stored findings."""
    with plain_rows(conn):
        return {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT fkey, id, digest FROM contract_findings")
        }


def diff_findings(
    stored: Mapping[str, tuple[int, str]],
    findings: Sequence[Finding],
    run_at: float,
    partner_of_server: Mapping[str, str],
    partner_of_contract: Mapping[str, str],
    partners: Sequence[str] | None = None,
    keep_partners: Iterable[str] = (),
) -> FindingChanges:
    """Rows to insert, update and delete so the table holds exactly ``findings``.

    ``partners`` (one per finding) says whose each finding is; without it the partner is
    looked up by server, then by contract id (only unambiguous for a single partner).
    Stored findings of ``keep_partners`` (whose evaluation failed) are not deleted."""
    changes = FindingChanges([], [], [])
    seen: set[str] = set()
    for i, f in enumerate(findings):
        if partners is not None:
            partner = partners[i]
        else:
            partner = (
                partner_of_server.get(f.server_id or "")
                or partner_of_contract.get(f.contract_id or "")
                or ""
            )
        key = finding_key(f, partner)
        if key in seen:
            continue
        seen.add(key)
        evidence = _dumps(dict(f.evidence))
        digest = f"{f.severity.value}|{f.clause}|{f.message}|{evidence}"
        old = stored.get(key)
        if old is not None and old[1] == digest:
            continue
        values = (
            partner,
            f.server_id,
            f.contract_id,
            f.kind,
            f.severity.value,
            f.clause,
            f.message,
            evidence,
            digest,
        )
        if old is None:
            changes.inserts.append((run_at, key, *values))
        else:
            changes.updates.append((*values, old[0]))
    kept = tuple(f"{p}|" for p in keep_partners)
    changes.deletes = [
        row_id
        for key, (row_id, _) in stored.items()
        if key not in seen and not (kept and key.startswith(kept))
    ]
    return changes


def apply_finding_changes(conn: Conn, changes: FindingChanges) -> None:
    gone = [
        tuple(r)
        for row_id in changes.deletes
        for r in conn.execute(
            "SELECT fkey, partner, server_id, kind, message FROM contract_findings WHERE id = ?",
            (row_id,),
        )
    ]
    notify_sources.findings_changed(conn, changes.inserts, gone, time.time())
    for row in changes.inserts:
        conn.execute(
            "INSERT INTO contract_findings (run_at, fkey, partner, server_id, contract_id, kind, "
            "severity, clause, message, evidence, digest) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
    for row in changes.updates:
        conn.execute(
            "UPDATE contract_findings SET partner = ?, server_id = ?, contract_id = ?, kind = ?, "
            "severity = ?, clause = ?, message = ?, evidence = ?, digest = ? WHERE id = ?",
            row,
        )
    for row_id in changes.deletes:
        conn.execute("DELETE FROM contract_findings WHERE id = ?", (row_id,))


def chunked(changes: FindingChanges, size: int) -> list[FindingChanges]:
    """Split into pieces of at most ``size`` operations (each one short write)."""
    ops: list[tuple[str, Any]] = (
        [("i", r) for r in changes.inserts]
        + [("u", r) for r in changes.updates]
        + [("d", r) for r in changes.deletes]
    )
    out = []
    for start in range(0, len(ops), size):
        part = FindingChanges([], [], [])
        lists: dict[str, list[Any]] = {"i": part.inserts, "u": part.updates, "d": part.deletes}
        for kind, item in ops[start : start + size]:
            lists[kind].append(item)
        out.append(part)
    return out


def list_findings(conn: Conn, partner: str | None = None) -> list[dict[str, object]]:
    sql = (
        "SELECT run_at, partner, server_id, contract_id, kind, severity, clause, message, "
        "evidence FROM contract_findings"
    )
    params: tuple[Any, ...] = ()
    if partner is not None:
        sql += " WHERE partner = ?"
        params = (partner,)
    sql += " ORDER BY id"
    return [
        {
            "run_at": r[0],
            "partner": r[1],
            "server_id": r[2],
            "contract_id": r[3],
            "kind": r[4],
            "severity": r[5],
            "clause": r[6],
            "message": r[7],
            "evidence": json.loads(r[8]),
        }
        for r in conn.execute(sql, params)
    ]


# --- incidents ---------------------------------------------------------------------------


def insert_incident(
    conn: Conn, inc: Incident, partner: str, now: float, finding_key: str | None = None
) -> None:
    conn.execute(
        "INSERT INTO incidents (id, partner, contract_id, server_id, plan, priority, opened_at, "
        "calendar, title, source, finding_key, state, events, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            inc.id,
            partner,
            inc.contract_id,
            inc.server_id,
            inc.plan,
            inc.priority,
            inc.opened_at.timestamp(),
            _dumps(inc.calendar.to_dict()),
            inc.title,
            inc.source,
            finding_key,
            replay(inc).state.value,
            _dumps(events_to_list(inc)),
            now,
        ),
    )
    notify_sources.incident_changed(
        conn,
        inc.id,
        partner,
        inc.server_id,
        inc.title,
        inc.priority,
        None,
        replay(inc).state.value,
        now,
    )


def save_incident(conn: Conn, inc: Incident, now: float) -> None:
    before = conn.execute("SELECT state, partner FROM incidents WHERE id = ?", (inc.id,)).fetchone()
    after = replay(inc).state.value
    if before is not None:
        notify_sources.incident_changed(
            conn, inc.id, before[1], inc.server_id, inc.title, inc.priority, before[0], after, now
        )
    conn.execute(
        "UPDATE incidents SET state = ?, events = ?, updated_at = ? WHERE id = ?",
        (replay(inc).state.value, _dumps(events_to_list(inc)), now, inc.id),
    )


_INC_COLS = (
    "id, partner, contract_id, server_id, plan, priority, opened_at, calendar, title, source, "
    "events"
)


def _incident(r: Any) -> tuple[Incident, str]:
    inc = Incident(
        id=r[0],
        plan=r[4],
        priority=r[5],
        opened_at=dt.datetime.fromtimestamp(r[6], dt.UTC),
        calendar=CalendarSpec.from_dict(json.loads(r[7])),
        contract_id=r[2],
        server_id=r[3],
        title=r[8],
        source=r[9],
        events=events_from_list(json.loads(r[10])),
    )
    return inc, r[1]


def get_incident(conn: Conn, incident_id: str) -> tuple[Incident, str] | None:
    r = conn.execute(f"SELECT {_INC_COLS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    return None if r is None else _incident(r)


def unfinished_incident_ids(conn: Conn) -> list[str]:
    """The incidents whose SLA clocks may still run: open, acknowledged or paused."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM incidents WHERE state IN ('open', 'acknowledged', 'paused')"
        ).fetchall()
    ]


def list_incidents(
    conn: Conn,
    partner: str | None = None,
    *,
    state: str | None = None,
    opened_from: float | None = None,
    opened_to: float | None = None,
) -> list[Incident]:
    sql = f"SELECT {_INC_COLS} FROM incidents WHERE 1 = 1"
    params: list[Any] = []
    if partner is not None:
        sql += " AND partner = ?"
        params.append(partner)
    if state is not None:
        sql += " AND state = ?"
        params.append(state)
    if opened_from is not None:
        sql += " AND opened_at >= ?"
        params.append(opened_from)
    if opened_to is not None:
        sql += " AND opened_at < ?"
        params.append(opened_to)
    sql += " ORDER BY opened_at, id"
    return [_incident(r)[0] for r in conn.execute(sql, tuple(params))]


def open_incidents_for_key(conn: Conn, finding_key: str) -> list[Incident]:
    """Incidents opened for ``finding_key`` that are neither resolved nor closed."""
    return [
        _incident(r)[0]
        for r in conn.execute(
            f"SELECT {_INC_COLS} FROM incidents WHERE finding_key = ? "
            "AND state NOT IN ('resolved', 'closed') ORDER BY opened_at, id",
            (finding_key,),
        )
    ]


def open_finding_keys(conn: Conn) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT finding_key FROM incidents WHERE finding_key IS NOT NULL "
            "AND state NOT IN ('resolved', 'closed')"
        )
    }


def support_cases(conn: Conn, partner: str) -> list[SupportCase]:
    """Incidents ``partner`` opened by hand count as support cases of its contract (a
    contract id is ``partner``'s own: another partner's cases never count)."""
    return support_cases_by_partner(conn, partner).get(partner, [])


def support_cases_by_partner(
    conn: Conn, partner: str | None = None
) -> dict[str, list[SupportCase]]:
    """Support cases per partner (every partner's when ``partner`` is None)."""
    sql = (
        "SELECT id, contract_id, opened_at, server_id, partner FROM incidents "
        "WHERE source = 'manual' AND contract_id IS NOT NULL"
    )
    params: tuple[Any, ...] = ()
    if partner is not None:
        sql += " AND partner = ?"
        params = (partner,)
    out: dict[str, list[SupportCase]] = defaultdict(list)
    for r in conn.execute(sql, params):
        out[r[4]].append(SupportCase(r[0], r[1], float(r[2]), r[3]))
    return dict(out)


# --- the scheduler lease ----------------------------------------------------------------


def acquire_lease(conn: Conn, name: str, holder: str, now: float, ttl: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False if another holder has it."""
    r = conn.execute(
        "SELECT holder, expires_at FROM contract_scheduler_lease WHERE name = ?", (name,)
    ).fetchone()
    if r is None:
        conn.execute(
            "INSERT INTO contract_scheduler_lease (name, holder, expires_at) VALUES (?, ?, ?)",
            (name, holder, now + ttl),
        )
        return True
    if r[0] != holder and r[1] > now:
        return False
    conn.execute(
        "UPDATE contract_scheduler_lease SET holder = ?, expires_at = ? WHERE name = ?",
        (holder, now + ttl, name),
    )
    return True

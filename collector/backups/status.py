"""Per-server backup status: last success, last failure with its reason, next due.

``fleet_backup_status`` answers for every server in two queries (a fleet page with
10,000 servers must not run a query per server); ``backup_status`` is the same for one.
"""

from __future__ import annotations

import time
from typing import Any

from collector.accounts import partners
from collector.backups import catalog
from collector.backups.policy import BackupPolicy, effective
from collector.backups.promise import (
    Promise,
    effective_for_server,
    promise_of_plan,
    resolve,
)
from collector.contracts import repository as contracts_repo
from collector.contracts.service import coverage_by_server, entitlement
from collector.health import servers
from protocol.backup_window import parse_window


def window_delay_s(window: str) -> int:
    """How long a daily window can hold a due backup back: its longest closed stretch.

    The window is in the server's local time, which the collector does not know; the
    closed stretch is the same in every zone, so a backup is overdue only once the
    interval plus this delay has passed (never a false alarm for a backup waiting for
    its window)."""
    parsed = parse_window(window or "")
    if parsed is None:
        return 0
    start, end = parsed
    open_s = ((end.hour - start.hour) * 3600 + (end.minute - start.minute) * 60) % 86400
    return 86400 - open_s


def _status(
    policy: BackupPolicy,
    enrolled_at: float | None,
    stored: float | None,
    ok_run: float | None,
    failed: tuple[float, str] | None,
    now: float,
    entitled: bool = True,
) -> dict[str, Any]:
    """``last_success`` is the last backup the collector stored and verified; a run the
    agent reports as ok without a stored backup shows as ``last_reported_ok`` only."""
    interval = int(policy.interval_s or 0)
    next_due = None
    if entitled and interval > 0:
        base = stored if stored is not None else enrolled_at
        if base is not None:
            next_due = base + interval + window_delay_s(policy.window or "")
    overdue = bool(next_due is not None and now > next_due)
    if not entitled:
        state = "not_entitled"
    elif interval == 0:
        state = "off"
    elif overdue:
        state = "overdue"
    elif stored is None:
        state = "new"
    else:
        state = "ok"
    return {
        "state": state,
        "entitled": entitled,
        "last_success": stored,
        "last_reported_ok": ok_run,
        "last_failure": None if failed is None else failed[0],
        "last_failure_reason": None if failed is None else failed[1],
        "next_due": next_due,
        "overdue": overdue,
        "interval_s": interval,
        "window": policy.window or "",
    }


def _entitled(conn: Any, server_id: str, now: float) -> bool:
    """The contract's answer; a contract whose term cannot be computed judges nothing."""
    try:
        return entitlement(conn, server_id, "online_backup", now).entitled
    except (ArithmeticError, ValueError, LookupError):
        return True


def backup_status(conn: Any, server_id: str, now: float | None = None) -> dict[str, Any]:
    """One server's status (``GET /api/v1/servers/{id}/backup-status``)."""
    srv = servers.brief(conn, server_id)
    policy = effective_for_server(
        conn, server_id, None if srv is None else int(srv["partner_id"]), now
    ).policy
    row = catalog.status_row(conn, server_id)
    now = time.time() if now is None else now
    return _status(
        policy,
        None if srv is None else srv["enrolled_at"],
        None if row is None else row[0],
        None if row is None else row[1],
        None if row is None or row[2] is None else (row[2], row[3]),
        now,
        srv is not None and _entitled(conn, server_id, now),
    )


class _FleetPolicies:
    """Each server's policy as a contract holds it, from the fleet's stored policies: the
    partner default is merged once per partner and a promise resolved once per (policy,
    plan, override reason), not once per server."""

    def __init__(self, conn: Any, coverage: dict[str, dict[str, Any]], contracted: set[int]):
        self.policies, self.overrides = catalog.all_policies(conn)
        self.coverage, self.contracted = coverage, contracted
        self.per_partner: dict[int, BackupPolicy] = {}
        self.resolved: dict[
            tuple[BackupPolicy, str | None, str | None], tuple[BackupPolicy, bool]
        ] = {}

    def configured(self, sid: str, pid: int) -> BackupPolicy:
        """Server override over partner default over built-in defaults."""
        override = self.policies.get(("server", sid))
        if override is not None:
            return effective(self.policies.get(("partner", str(pid))), override)
        policy = self.per_partner.get(pid)
        if policy is None:
            policy = self.per_partner[pid] = effective(
                self.policies.get(("partner", str(pid))), None
            )
        return policy

    def held(self, sid: str, pid: int) -> tuple[BackupPolicy, bool]:
        """(the policy a contract holds the server to, whether it is entitled to backups)."""
        policy = self.configured(sid, pid)
        if pid not in self.contracted:
            return policy, True
        # One bulk coverage answer for the fleet, not a contract lookup per server.
        cov = self.coverage.get(sid) or {"coverage": "none"}
        in_force = cov["coverage"] in ("active", "grace")
        why = self.overrides.get(("server", sid), self.overrides.get(("partner", str(pid))))
        # The policy held to a promise depends on the plan, not on which contract
        # promised it: computed once per (policy, plan, override reason).
        key = (policy, cov["plan"] if in_force else None, why)
        held = self.resolved.get(key)
        if held is None:
            promise: Promise | None = (
                promise_of_plan(cov["plan"], cov["contract_id"]) if in_force else None
            )
            held = self.resolved[key] = (resolve(policy, promise, why).policy, promise is not None)
        return held[0], cov["coverage"] == "invalid" or (in_force and held[1])


def fleet_backup_status(
    conn: Any,
    partner_id: int | None = None,
    now: float | None = None,
    coverage: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """server id -> status, for all servers (or one partner's): three queries, plus the
    contract lookups for the servers of partners that have contracts (``coverage``: the
    caller's :func:`coverage_by_server` answer for the same servers, if it has one)."""
    now = time.time() if now is None else now
    rows = catalog.fleet_status_rows(conn, partner_id)
    holders = contracts_repo.contract_partners(conn)
    with_contracts = {pid for pid, name in partners.names_by_id(conn).items() if name in holders}
    if coverage is None:
        coverage = {}
    if not coverage and with_contracts and (partner_id is None or partner_id in with_contracts):
        name = None if partner_id is None else partners.name_of(conn, partner_id)
        coverage = coverage_by_server(conn, now, name)
    fleet = _FleetPolicies(conn, coverage, with_contracts)
    out: dict[str, dict[str, Any]] = {}
    for sid, pid, enrolled_at, stored, ok, failed_at, reason in rows:
        policy, entitled = fleet.held(sid, pid)
        failed = None if failed_at is None else (failed_at, reason)
        out[sid] = _status(policy, enrolled_at, stored, ok, failed, now, entitled)
    return out

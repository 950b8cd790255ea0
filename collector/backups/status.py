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
    sql = (
        "SELECT s.id, s.partner_id, s.enrolled_at, b.last_stored_at, b.last_ok_at, "
        "b.last_failed_at, b.last_failed_reason FROM servers s "
        "LEFT JOIN backup_status b ON b.server_id = s.id WHERE s.revoked_at IS NULL"
    )
    rows = (
        conn.execute(sql).fetchall()
        if partner_id is None
        else conn.execute(sql + " AND s.partner_id = ?", (partner_id,)).fetchall()
    )
    policies: dict[tuple[str, str], BackupPolicy] = {}
    overrides: dict[tuple[str, str], str] = {}
    for row in conn.execute(
        "SELECT scope, scope_id, interval_s, backup_window, keep_last, keep_daily, keep_weekly, "
        "keep_monthly, keep_yearly, contract_override FROM backup_policies"
    ).fetchall():
        policies[(row[0], row[1])] = BackupPolicy(*(row[i] for i in range(2, 9)))
        if row[9] is not None:
            overrides[(row[0], row[1])] = row[9]
    with_contracts = partners.ids_with_contracts(conn)
    if coverage is None:
        coverage = {}
    if not coverage and with_contracts and (partner_id is None or partner_id in with_contracts):
        name = None if partner_id is None else partners.name_of(conn, partner_id)
        coverage = coverage_by_server(conn, now, name)
    out: dict[str, dict[str, Any]] = {}
    per_partner: dict[int, BackupPolicy] = {}
    resolved: dict[tuple[BackupPolicy, str | None, str | None], tuple[BackupPolicy, bool]] = {}
    for sid, pid, enrolled_at, stored, ok, failed_at, reason in rows:
        override = policies.get(("server", sid))
        if override is None:
            policy = per_partner.get(pid)
            if policy is None:
                policy = per_partner[pid] = effective(policies.get(("partner", str(pid))), None)
        else:
            policy = effective(policies.get(("partner", str(pid))), override)
        entitled = True
        if pid in with_contracts:
            # One bulk coverage answer for the fleet, not a contract lookup per server.
            cov = coverage.get(sid) or {"coverage": "none"}
            in_force = cov["coverage"] in ("active", "grace")
            why = overrides.get(("server", sid), overrides.get(("partner", str(pid))))
            # The policy held to a promise depends on the plan, not on which contract
            # promised it: computed once per (policy, plan, override reason).
            key = (policy, cov["plan"] if in_force else None, why)
            held = resolved.get(key)
            if held is None:
                promise: Promise | None = (
                    promise_of_plan(cov["plan"], cov["contract_id"]) if in_force else None
                )
                held = resolved[key] = (resolve(policy, promise, why).policy, promise is not None)
            policy = held[0]
            entitled = cov["coverage"] == "invalid" or (in_force and held[1])
        failed = None if failed_at is None else (failed_at, reason)
        out[sid] = _status(policy, enrolled_at, stored, ok, failed, now, entitled)
    return out

"""The backup policy a server runs: the partner's policy held to its contract's promise.

A contract with online backup promises an interval (with a tolerance) and a retention
(``collector.contracts.plans.BackupPolicy``). The policy the agent receives and the store
keeps is the stricter of the two, field by field: the shorter interval, the larger
``keep_*``, and no window when the window would make the interval impossible. A partner
may knowingly run below the promise only with an explicit override (a reason stored on its
policy row); then the configured policy runs as set and the monthly report lists the
override with the promises it breaks. :func:`store_policy` is the one way a policy is
stored (CLI, settings page, API alike): it refuses a policy that breaks a promise unless
an override reason comes with it, and records that reason.

A window breaks a promise shorter than a day when it stays closed for longer than the
promise's tolerance (a backup every 6 h cannot land within 6 h + 2 h across a 10-hour
closed stretch); a promise of a day or longer fits any window (one backup a day).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from collector.backups import catalog
from collector.backups.errors import BreaksPromise, Invalid
from collector.backups.policy import BackupPolicy, effective, format_duration
from collector.contracts import repository as repo
from collector.contracts.covering import covering_contract
from collector.health import servers
from protocol.backup_window import parse_window

_DAY = 86400


@dataclass(frozen=True)
class Promise:
    """What the contract covering a server promises about backups."""

    interval_s: int
    tolerance_s: int
    keep_last: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    contract_id: str
    plan_title: str

    @property
    def source(self) -> str:
        return f"contract {self.contract_id} ({self.plan_title})"


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy a server runs and why."""

    policy: BackupPolicy
    configured: BackupPolicy
    """Partner default and server override over the built-in defaults, before the promise."""
    promise: Promise | None
    override: str | None
    """The reason recorded with an override, or None."""
    broken: tuple[str, ...]
    """The promises ``configured`` breaks (kept as set only with an override)."""


def promise_for_server(conn: Any, server_id: str, now: float | None = None) -> Promise | None:
    """The promise of the contract covering the server now (None: no contract in force,
    or a plan without online backup)."""
    found = repo.server_licence(conn, server_id)
    if found is None or not found[0]:
        return None
    try:
        covering = covering_contract(conn, found[1], found[0], time.time() if now is None else now)
        if covering is None or not covering.in_force:
            return None
        plan = covering.plan
    except (ArithmeticError, ValueError, LookupError):
        # A stored contract whose term cannot be computed promises nothing it can keep:
        # shown as invalid elsewhere, never a failed policy.
        return None
    if not plan.entitlements.online_backup or plan.backup is None:
        return None
    b = plan.backup
    r = b.retention
    return Promise(
        interval_s=b.interval_s,
        tolerance_s=b.tolerance_s,
        keep_last=r.keep_last,
        keep_daily=r.keep_daily,
        keep_weekly=r.keep_weekly,
        keep_monthly=r.keep_monthly,
        contract_id=covering.contract.id,
        plan_title=plan.title,
    )


def promise_of_plan(plan_name: str, contract_id: str) -> Promise | None:
    """The promise of a plan (by name) for a contract, or None without online backup."""
    from collector.contracts.plans import get_plan

    try:
        plan = get_plan(plan_name)
    except KeyError:
        return None
    if not plan.entitlements.online_backup or plan.backup is None:
        return None
    b, r = plan.backup, plan.backup.retention
    return Promise(
        b.interval_s,
        b.tolerance_s,
        r.keep_last,
        r.keep_daily,
        r.keep_weekly,
        r.keep_monthly,
        contract_id,
        plan.title,
    )


def _closed_s(window: str) -> int:
    """Longest stretch a daily window stays closed, in seconds (0 = any time)."""
    parsed = parse_window(window or "")
    if parsed is None:
        return 0
    start, end = parsed
    s = start.hour * 3600 + start.minute * 60
    e = end.hour * 3600 + end.minute * 60
    open_s = (e - s) % _DAY
    return _DAY - open_s


def window_breaks(window: str, promise: Promise) -> bool:
    return promise.interval_s < _DAY and _closed_s(window) > promise.tolerance_s


_KEEPS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def broken_promises(policy: BackupPolicy, promise: Promise) -> list[str]:
    """Each promise ``policy`` (complete, as :func:`effective` gives it) breaks, in words."""
    out = []
    interval = int(policy.interval_s or 0)
    if interval == 0 or interval > promise.interval_s:
        shown = "off" if interval == 0 else f"every {format_duration(interval)}"
        out.append(
            f"interval {shown} breaks the backup every "
            f"{format_duration(promise.interval_s)} promised by {promise.source}"
        )
    if window_breaks(policy.window or "", promise):
        out.append(
            f"window {policy.window} stays closed longer than the "
            f"{format_duration(promise.tolerance_s)} tolerance of the backup every "
            f"{format_duration(promise.interval_s)} promised by {promise.source}"
        )
    for name in _KEEPS:
        have, want = int(getattr(policy, name) or 0), getattr(promise, name)
        if have < want:
            out.append(f"{name} {have} is below the {want} promised by {promise.source}")
    return out


def held_to(policy: BackupPolicy, promise: Promise) -> BackupPolicy:
    """The stricter of ``policy`` (complete) and ``promise``, field by field."""
    interval = int(policy.interval_s or 0)
    return replace(
        policy,
        interval_s=promise.interval_s if interval == 0 else min(interval, promise.interval_s),
        window="" if window_breaks(policy.window or "", promise) else policy.window,
        **{n: max(int(getattr(policy, n) or 0), getattr(promise, n)) for n in _KEEPS},
    )


def resolve(
    configured: BackupPolicy, promise: Promise | None, override: str | None
) -> EffectivePolicy:
    if promise is None:
        return EffectivePolicy(configured, configured, None, override, ())
    broken = tuple(broken_promises(configured, promise))
    if override is not None:
        return EffectivePolicy(configured, configured, promise, override, broken)
    return EffectivePolicy(held_to(configured, promise), configured, promise, None, broken)


def effective_for_server(
    conn: Any, server_id: str, partner_id: int | None = None, now: float | None = None
) -> EffectivePolicy:
    """The policy the server runs: configured policy held to its contract's promise."""
    if partner_id is None:
        srv = servers.brief(conn, server_id)
        partner_id = None if srv is None else int(srv["partner_id"])
    configured = catalog.policy_for_server(conn, server_id, partner_id)
    override = catalog.get_override(conn, "server", server_id)
    if override is None and partner_id is not None:
        override = catalog.get_override(conn, "partner", str(partner_id))
    return resolve(configured, promise_for_server(conn, server_id, now), override)


def check_change(
    conn: Any, scope: str, scope_id: str, changes: BackupPolicy, now: float | None = None
) -> list[str]:
    """The promises a policy change would break, per affected server (empty: none)."""
    current = catalog.get_policy(conn, scope, scope_id) or BackupPolicy()
    new_row = changes.over(current)
    if scope == "server":
        srv = servers.brief(conn, scope_id)
        pid = None if srv is None else str(srv["partner_id"])
        partner = None if pid is None else catalog.get_policy(conn, "partner", pid)
        targets = [(scope_id, effective(partner, new_row))]
    else:
        targets = [
            (sid, effective(new_row, catalog.get_policy(conn, "server", sid)))
            for sid in servers.active_ids(conn, int(scope_id))
        ]
    out: list[str] = []
    for sid, policy in targets:
        promise = promise_for_server(conn, sid, now)
        if promise is not None:
            out.extend(f"server {sid}: {b}" for b in broken_promises(policy, promise))
    return out


MAX_OVERRIDE_CHARS = 500


def store_policy(
    conn: Any,
    scope: str,
    scope_id: str,
    changes: BackupPolicy,
    now: float,
    override: str | None = None,
) -> list[str]:
    """Store a partner's (``scope="partner"``, its id) or a server's policy change held
    to the contracts of every server it applies to; return the promises it breaks.

    A change that breaks a promise raises :class:`BreaksPromise` naming each, unless
    ``override`` gives the reason to run it anyway: then it is stored with the reason
    (the monthly report shows it). A change that breaks nothing clears an old override.
    The promises are those in force now; ``now`` is the change's time stamp. Call inside
    ``Database.write``."""
    reason = None if override is None else override.strip()
    if reason is not None and not reason:
        raise Invalid("invalid_override", "the override needs a reason", "override_contract")
    if reason is not None and len(reason) > MAX_OVERRIDE_CHARS:
        raise Invalid(
            "invalid_override",
            f"the override reason is longer than {MAX_OVERRIDE_CHARS} characters",
            "override_contract",
        )
    broken = check_change(conn, scope, scope_id, changes)
    if broken and reason is None:
        raise BreaksPromise(
            "breaks_contract",
            "this policy breaks the contract's promise: " + "; ".join(broken),
            extra={"breaks": broken},
        )
    catalog.write_policy(conn, scope, scope_id, changes, now, reason if broken else None)
    return broken

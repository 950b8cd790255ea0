"""Conditions no single request reveals, judged every sweep: a server that went silent,
a backup overdue or failed, an SLA clock past 50 %, 75 % or its due time.

Each sweep reads the fleet once, then writes only the conditions that changed, each with
its event, in one transaction (:mod:`collector.notify.events`)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from collector.accounts import partners
from collector.contracts import incidents as inc_model
from collector.contracts import repository as contracts_repo
from collector.health.fleet import FleetView
from collector.notify import delivery, events

_SLA_LEVELS = {
    inc_model.ClockStatus.WARNING_50: ("sla.warning", "50"),
    inc_model.ClockStatus.WARNING_75: ("sla.warning", "75"),
    inc_model.ClockStatus.BREACHED: ("sla.breached", "breached"),
    inc_model.ClockStatus.MISSED: ("sla.breached", "breached"),
}


def _server_conditions(v: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]] | None]:
    """dedup key -> (kind, subject, data) if active, None if not, for one server view."""
    sid = v["id"]
    out: dict[str, tuple[str, str, dict[str, Any]] | None] = {}
    if v["revoked"]:
        return {f"server:{sid}": None, f"backup-overdue:{sid}": None, f"backup-failed:{sid}": None}
    offline = v["status"] == "offline"
    out[f"server:{sid}"] = (
        ("server.offline", "server offline", {"last_seen": v["last_seen"]}) if offline else None
    )
    b = v.get("backup") or {}
    out[f"backup-overdue:{sid}"] = (
        ("backup.overdue", "backup overdue", {"next_due": b.get("next_due")})
        if b.get("overdue")
        else None
    )
    failed_at = b.get("last_failure")
    failed = failed_at is not None and failed_at > (b.get("last_success") or 0)
    out[f"backup-failed:{sid}"] = (
        ("backup.failed", "backup failed", {"failed_at": failed_at}) if failed else None
    )
    return out


def judge(conn: sqlite3.Connection, now: float, interval_s: int, offline_after: int) -> list[Any]:
    """Read side: the condition changes to write (dedup key, server, kind-or-None, ...)."""
    views = FleetView(conn, interval_s, offline_after).all(None, now)
    active = events.active_sweep_kinds(conn)
    changes: list[Any] = []
    for v in views:
        for key, want in _server_conditions(v).items():
            have = active.get(key)
            if want is None and have is not None:
                extra = {"subject": "server revoked: no longer watched"} if v["revoked"] else {}
                changes.append((key, v["id"], None, v["hostname"], extra))
            elif want is not None and have != want[0]:
                changes.append((key, v["id"], want, v["hostname"], {}))
    changes.extend(_sla_changes(conn, now, active))
    return changes


def _sla_changes(conn: sqlite3.Connection, now: float, active: dict[str, str]) -> list[Any]:
    out: list[Any] = []
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    for incident_id in contracts_repo.unfinished_incident_ids(conn):
        found = contracts_repo.get_incident(conn, incident_id)
        if found is None:
            continue
        inc, partner = found
        st = inc_model.status(inc, at)
        for clock, report in (("response", st.response), ("resolution", st.resolution)):
            level = _SLA_LEVELS.get(report.status)
            if level is None:
                continue
            kind, label = level
            key = f"sla:{incident_id}:{clock}:{label}"
            if key in active:
                continue
            subject = (
                f"incident {incident_id}: {clock} time breached"
                if kind == "sla.breached"
                else f"incident {incident_id}: {label} % of the {clock} time used"
            )
            data = {
                "incident": incident_id,
                "clock": clock,
                "level": label,
                "partner": partner,
                "due": None if report.due is None else report.due.isoformat(),
            }
            out.append((key, inc.server_id, (kind, subject, data), "", {"partner": partner}))
    return out


def apply(conn: sqlite3.Connection, changes: list[Any], now: float) -> int:
    """Write side: each change with its event; returns the events written."""
    n = 0
    for key, server_id, want, hostname, extra in changes:
        partner_id = None
        if extra.get("partner"):
            partner_id = partners.id_by_name(conn, extra["partner"])
        if want is None:
            what = key.split(":", 1)[0]
            subject = extra.get("subject") or {
                "server": "server back online",
                "backup-overdue": "backup back on time",
                "backup-failed": "backup succeeded again",
            }.get(what, f"{what} back to normal")
            n += events.clear(conn, key, subject, now, server_id=server_id) is not None
            continue
        kind, subject, data = want
        data = {**data, "hostname": hostname}
        n += (
            events.fire(
                conn, kind, key, subject, now, server_id=server_id, partner_id=partner_id, data=data
            )
            is not None
        )
    return n


KEEP_S = 31 * 86400.0
"""Events, messages and attempts are kept 31 days (the delivery log's reach)."""


def prune(conn: sqlite3.Connection, now: float) -> int:
    """Drop what is older than :data:`KEEP_S` and done with."""
    before = now - KEEP_S
    return events.prune(conn, before) + delivery.prune(conn, before)

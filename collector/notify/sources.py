"""Where the collector's state changes become events: called inside the writes that make them.

Ingest calls :func:`cameras_changed` with the verdict changes it just wrote (after the
agent's flap damping) and :func:`report_stored` once per newer report; the contract code
calls :func:`incident_changed` and :func:`findings_changed`. Each writes only when a
condition starts, changes or ends (see :mod:`collector.notify.events`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from collector.accounts import partners
from collector.notify import events

CAMERA_DOWN = frozenset({"unreachable", "auth_failed", "error"})
"""The same verdicts as the fleet status's ``CAMERA_DOWN``."""


def camera_key(server_id: str, camera: str) -> str:
    return f"camera:{server_id}:{camera}"


def cameras_changed(
    conn: sqlite3.Connection, server_id: str, changes: Iterable[Any], at: float
) -> None:
    """``changes``: the verdict transitions (key, before, after) ingest just stored."""
    for t in changes:
        key = camera_key(server_id, t.key)
        data = {"camera": t.key, "before": t.before, "after": t.after}
        if t.after in CAMERA_DOWN:
            events.fire(
                conn,
                "camera.down",
                key,
                f"camera {t.key} down ({t.after})",
                at,
                server_id=server_id,
                data=data,
            )
        elif t.after == "degraded":
            events.fire(
                conn,
                "camera.degraded",
                key,
                f"camera {t.key} degraded",
                at,
                server_id=server_id,
                data=data,
            )
        else:
            what = "removed" if t.after == "removed" else f"back ({t.after})"
            events.clear(conn, key, f"camera {t.key} {what}", at, server_id=server_id, data=data)


def report_stored(
    conn: sqlite3.Connection,
    server_id: str,
    filling: Sequence[Any],
    at: float,
    failing_disks: Sequence[Any] = (),
    *,
    conditions: bool = True,
) -> None:
    """A newer report arrived: the server is back if it was offline; volumes forecast
    full within 48 h and disks SMART calls failing start (or end) their condition.
    ``conditions`` False: the caller read that the server has no active condition."""
    if not conditions and not filling and not failing_disks:
        return
    active = events.active(conn, server_id)
    if not active and not filling and not failing_disks:
        return
    server_key = f"server:{server_id}"
    if server_key in active:
        events.clear(conn, server_key, "server back online", at, server_id=server_id)
    filling_keys = _fire_filling(conn, server_id, filling, at)
    failing_keys = _fire_failing(conn, server_id, failing_disks, at)
    _clear_ended(conn, server_id, active, "disk.failing", failing_keys, at)
    _clear_ended(conn, server_id, active, "volume.filling", filling_keys, at)


def _fire_filling(
    conn: sqlite3.Connection, server_id: str, filling: Sequence[Any], at: float
) -> set[str]:
    """A ``volume.filling`` condition per volume forecast full; their keys."""
    keys = set()
    for v in filling:
        key = f"volume:{server_id}:{v.mountpoint}"
        keys.add(key)
        hours = max(0.0, ((v.full_at or at) - at) / 3600)
        events.fire(
            conn,
            "volume.filling",
            key,
            f"recording volume {v.mountpoint} full within {hours:.0f} h",
            at,
            server_id=server_id,
            data={"mountpoint": v.mountpoint, "full_at": v.full_at, "free": v.free},
        )
    return keys


def _fire_failing(
    conn: sqlite3.Connection, server_id: str, failing_disks: Sequence[Any], at: float
) -> set[str]:
    """A ``disk.failing`` condition per disk SMART calls failing; their keys."""
    keys = set()
    for d in failing_disks:
        key = f"disk:{server_id}:{d.device}"
        keys.add(key)
        why = d.failing[0] if d.failing else "SMART says failing"
        events.fire(
            conn,
            "disk.failing",
            key,
            f"disk {d.device} failing: {why}",
            at,
            server_id=server_id,
            data={"device": d.device, "model": d.model, "serial": d.serial, "failing": d.failing},
        )
    return keys


_ENDED = {
    "disk.failing": ("disk {} no longer failing", "device"),
    "volume.filling": ("recording volume {} no longer filling", "mountpoint"),
}
"""kind -> (subject when its condition ends, the data key naming what it was about)."""


def _clear_ended(
    conn: sqlite3.Connection,
    server_id: str,
    active: dict[str, str],
    kind: str,
    still: set[str],
    at: float,
) -> None:
    """Clear the active conditions of ``kind`` this report no longer has."""
    subject, field = _ENDED[kind]
    for key, active_kind in active.items():
        if active_kind == kind and key not in still:
            what = key.split(":", 2)[2]
            events.clear(
                conn, key, subject.format(what), at, server_id=server_id, data={field: what}
            )


def backup_damaged(
    conn: sqlite3.Connection, server_id: str, backup_id: str, seq: int, reason: str, at: float
) -> None:
    """A stored backup failed its integrity check."""
    events.fire(
        conn,
        "backup.integrity",
        f"backup-integrity:{backup_id}",
        f"stored backup {seq} is damaged",
        at,
        server_id=server_id,
        data={"backup": backup_id, "seq": seq, "reason": reason},
    )


def backup_repaired(conn: sqlite3.Connection, server_id: str, backup_id: str, at: float) -> None:
    events.clear(
        conn,
        f"backup-integrity:{backup_id}",
        "stored backup reads back correctly again",
        at,
        server_id=server_id,
        data={"backup": backup_id},
    )


_PRIORITY_SEVERITY = {
    "P1": "critical",
    "P2": "high",
    "P3": "warning",
    "P4": "info",
    "HIGH": "high",
    "MEDIUM": "warning",
    "LOW": "info",
}
"""An incident's severity from its priority (both plan spellings)."""


def incident_changed(
    conn: sqlite3.Connection,
    incident_id: str,
    partner: str,
    server_id: str | None,
    title: str,
    priority: str,
    before: str | None,
    after: str,
    at: float,
) -> None:
    """An incident was opened (``before`` None) or changed state."""
    if before == after:
        return
    key = f"incident:{incident_id}"
    more: dict[str, Any] = {
        "server_id": server_id,
        "partner_id": partners.id_by_name(conn, partner),
        "data": {"incident": incident_id, "priority": priority, "state": after, "title": title},
    }
    if before is None:
        sev = _PRIORITY_SEVERITY.get(priority.upper(), "high")
        events.fire(
            conn,
            "incident.opened",
            key,
            f"incident {incident_id} opened: {title}",
            at,
            severity=sev,
            **more,
        )
    elif after == "resolved" or (after == "closed" and before != "resolved"):
        # Resolved; a plan without customer acceptance closes it at once.
        events.emit(conn, "incident.resolved", key, f"incident {incident_id} resolved", at, **more)
        if after == "closed":
            _closed(conn, incident_id, key, f"incident {incident_id} closed", at, more)
    elif after == "closed":
        _closed(conn, incident_id, key, f"incident {incident_id} accepted", at, more)
        events.emit(conn, "incident.accepted", key, f"incident {incident_id} accepted", at, **more)
    elif before in ("resolved", "closed") and after in ("open", "acknowledged"):
        events.fire(
            conn, "incident.opened", key, f"incident {incident_id} reopened: {title}", at, **more
        )


def _closed(
    conn: sqlite3.Connection, incident_id: str, key: str, subject: str, at: float, more: Any
) -> None:
    """The incident's condition ends; its SLA warnings are done with."""
    events.clear(conn, key, subject, at, **more)
    events.forget_prefixed(conn, f"sla:{incident_id}:")


def findings_changed(
    conn: sqlite3.Connection,
    inserted: Iterable[Sequence[Any]],
    deleted: Iterable[tuple[str, str, str | None, str, str]],
    at: float,
) -> None:
    """Contract findings stored for the first time fire; removed ones clear.
    ``inserted`` rows: (run_at, fkey, partner, server_id, contract_id, kind, severity,
    clause, message, ...); ``deleted``: (fkey, partner, server_id, kind, message)."""
    inserted = list(inserted)
    escalated = set()
    for row in inserted:
        _, fkey, partner, server_id, contract_id, kind, severity, clause, message = row[:9]
        if kind.startswith("expiring_"):
            escalated.add((partner, server_id, contract_id))
        events.fire(
            conn,
            "contract.finding",
            f"finding:{fkey}",
            message,
            at,
            server_id=server_id,
            partner_id=partners.id_by_name(conn, partner),
            severity=severity if severity in events.SEVERITIES else "warning",
            data={"finding": kind, "contract": contract_id, "clause": clause},
        )
    for fkey, partner, server_id, kind, message in deleted:
        contract_id = fkey.split("|")[2] if fkey.count("|") >= 3 else None
        if kind.startswith("expiring_") and (partner, server_id, contract_id) in escalated:
            # 90 days became 60: the new threshold's event says it; no "resolved" between.
            events.forget(conn, f"finding:{fkey}")
            continue
        events.clear(
            conn,
            f"finding:{fkey}",
            f"no longer: {message}",
            at,
            server_id=server_id,
            partner_id=partners.id_by_name(conn, partner),
            data={"finding": kind},
        )

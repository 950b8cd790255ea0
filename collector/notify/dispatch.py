"""From events to messages: routing, silences, grouping, repeat interval, quiet hours, digest.

:func:`route_events` takes the outbox's unrouted events in order. Each is claimed in the
database first (``UPDATE … SET routed_at … WHERE routed_at IS NULL``: one process wins,
on SQLite and PostgreSQL alike); a silenced event is only logged; otherwise the event
becomes the latest state of its *alert* (route, de-duplication key) in ``notify_alerts``,
marked pending.

:func:`flush` turns pending alerts into messages. Alerts of one route with the same group
key (site or server, and kind) wait ``group_wait_s`` from the first of them and leave as
one message. The repeat interval limits what a flapping condition sends: a condition that
comes back within the interval after its resolved notice is held until the interval has
passed since the last "down" message (then it is sent if it is still down), so a route
sends at most one "down" and one "back" per key and interval; one that stays firing is
repeated once per interval. A resolved state is sent only if the firing one was. During
quiet hours only critical events and SLA breaches leave; the rest wait for the end. A
digest route collects everything into one message a day.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collector.accounts import partners
from collector.notify import delivery, rules, store, texts
from collector.notify.events import FIRING, RESOLVED, severity_rank

ROUTE_BATCH = 2000
"""Events routed per write: the writer is shared with ingest."""


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


class _Lookups:
    """Per-write caches: a partner's routes and silences, a server's labels."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self._routes: dict[int | None, list[store.Route]] = {}
        self._silences: dict[int | None, list[dict[str, Any]]] = {}
        self._labels: dict[str | None, tuple[str, str]] = {}
        self.channel_customer = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT id, customer FROM notify_channels WHERE removed_at IS NULL"
            )
        }

    def routes(self, partner_id: int | None) -> list[store.Route]:
        if partner_id not in self._routes:
            self._routes[partner_id] = (
                [] if partner_id is None else store.list_routes(self.conn, partner_id)
            )
        return self._routes[partner_id]

    def silences(self, partner_id: int | None) -> list[dict[str, Any]]:
        if partner_id not in self._silences:
            self._silences[partner_id] = (
                []
                if partner_id is None
                else [
                    {"id": r[0], "scope": r[1], "value": r[2], "starts_at": r[3], "ends_at": r[4]}
                    for r in self.conn.execute(
                        "SELECT id, scope, value, starts_at, ends_at FROM notify_silences "
                        "WHERE partner_id = ? AND ends_at > ?",
                        (partner_id, self.now - 86400),
                    )
                ]
            )
        return self._silences[partner_id]

    def labels(self, server_id: str | None) -> tuple[str, str]:
        if server_id not in self._labels:
            row = (
                None
                if server_id is None
                else self.conn.execute(
                    "SELECT customer, site FROM notify_server_labels WHERE server_id = ?",
                    (server_id,),
                ).fetchone()
            )
            self._labels[server_id] = ("", "") if row is None else (row[0], row[1])
        return self._labels[server_id]


def _log(
    conn: sqlite3.Connection, event_id: int, route_id: int | None, outcome: str, at: float
) -> None:
    conn.execute(
        "INSERT INTO notify_event_log (event_id, route_id, outcome, at) VALUES (?, ?, ?, ?)",
        (event_id, route_id, outcome, at),
    )


def route_events(conn: sqlite3.Connection, now: float, limit: int = ROUTE_BATCH) -> int:
    """Route up to ``limit`` unrouted events, oldest first; return how many."""
    rows = conn.execute(
        "SELECT id, kind, status, severity, dedup_key, partner_id, server_id, at "
        "FROM notify_events WHERE routed_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    look = _Lookups(conn, now)
    n = 0
    for eid, kind, status, severity, key, partner_id, server_id, at in rows:
        claimed = conn.execute(
            "UPDATE notify_events SET routed_at = ? WHERE id = ? AND routed_at IS NULL",
            (now, eid),
        ).rowcount
        if claimed != 1:
            continue  # another process routed it
        n += 1
        customer, site = look.labels(server_id)
        matched = [
            r
            for r in look.routes(partner_id)
            if rules.matches(r, kind, severity, customer, site)
            and look.channel_customer.get(r.channel_id, "") in ("", customer)
        ]
        if not matched:
            _log(conn, eid, None, "no_route", now)
            continue
        silence = rules.silenced(look.silences(partner_id), at, server_id, customer, site)
        if silence is not None:
            for r in matched:
                _log(conn, eid, r.id, f"silenced:{silence}", now)
            continue
        group = f"{site or server_id or 'partner'}|{kind}"
        for r in matched:
            conn.execute(
                "INSERT INTO notify_alerts (route_id, dedup_key, event_id, status, kind, "
                "group_key, pending_since) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (route_id, dedup_key) DO UPDATE SET event_id = excluded.event_id, "
                "status = excluded.status, kind = excluded.kind, group_key = excluded.group_key, "
                "pending_since = COALESCE(notify_alerts.pending_since, excluded.pending_since)",
                (r.id, key, eid, status, kind, group, now),
            )
            _log(conn, eid, r.id, "digest" if r.digest else "queued", now)
    return n


@dataclass
class _Alert:
    route_id: int
    key: str
    event_id: int
    status: str
    kind: str
    group_key: str
    pending_since: float | None
    sent_status: str | None
    sent_kind: str | None
    sent_at: float | None
    firing_sent_at: float | None
    resolved_sent_at: float | None


_ALERT_COLS = (
    "route_id, dedup_key, event_id, status, kind, group_key, pending_since, sent_status, "
    "sent_kind, sent_at, firing_sent_at, resolved_sent_at"
)


def _decide(a: _Alert, route: store.Route, now: float) -> str:
    """``send``, ``repeat``, ``hold`` (ask again later) or ``drop`` (nothing to say)."""
    if a.pending_since is None:
        return "repeat"
    if a.status == RESOLVED:
        if a.sent_status != FIRING:
            return "drop"  # nobody was told it was down
        if not route.send_resolved:
            return "mute"
        if a.resolved_sent_at is not None and now - a.resolved_sent_at < route.repeat_s:
            return "hold"
        return "send"
    if a.sent_status == FIRING and a.sent_kind == a.kind:
        return "drop"  # already told, and still so: the repeat interval speaks for it
    if (
        a.sent_status == RESOLVED
        and a.firing_sent_at is not None
        and now - a.firing_sent_at < route.repeat_s
    ):
        return "hold"  # flapping: one "down" per repeat interval
    return "send"


def _candidates(conn: sqlite3.Connection, now: float) -> list[_Alert]:
    pending = conn.execute(
        f"SELECT {_ALERT_COLS} FROM notify_alerts WHERE pending_since IS NOT NULL"
    ).fetchall()
    repeats = conn.execute(
        f"SELECT {', '.join('a.' + c.strip() for c in _ALERT_COLS.split(','))} "
        "FROM notify_alerts a JOIN notify_routes r ON r.id = a.route_id "
        "WHERE a.pending_since IS NULL AND a.status = 'firing' AND a.sent_status = 'firing' "
        "AND r.digest = 0 AND a.sent_at + r.repeat_s <= ?",
        (now,),
    ).fetchall()
    return [_Alert(*r) for r in (*pending, *repeats)]


def flush(conn: sqlite3.Connection, now: float, base_url: str = "") -> list[int]:
    """Make the messages that are due; return their ids."""
    routes = {r.id: r for r in store.list_routes(conn, None)}
    groups: dict[tuple[int, str], list[_Alert]] = defaultdict(list)
    for a in _candidates(conn, now):
        if a.route_id not in routes:
            conn.execute("DELETE FROM notify_alerts WHERE route_id = ?", (a.route_id,))
            continue
        groups[(a.route_id, "digest" if routes[a.route_id].digest else a.group_key)].append(a)
    made: list[int] = []
    for (route_id, group_key), alerts in sorted(groups.items(), key=_first_pending):
        route = routes[route_id]
        if route.digest:
            mid = _digest(conn, route, alerts, now, base_url)
        else:
            mid = _group(conn, route, group_key, alerts, now, base_url)
        if mid is not None:
            made.append(mid)
    return made


def _first_pending(item: tuple[tuple[int, str], list[_Alert]]) -> float:
    return min((a.pending_since or a.sent_at or 0.0) for a in item[1])


def _group(
    conn: sqlite3.Connection,
    route: store.Route,
    group_key: str,
    alerts: list[_Alert],
    now: float,
    base_url: str,
) -> int | None:
    waiting = [a.pending_since for a in alerts if a.pending_since is not None]
    if waiting and min(waiting) + route.group_wait_s > now:
        return None
    quiet = rules.quiet_until(route, now)
    out: list[tuple[_Alert, bool]] = []
    for a in alerts:
        verdict = _decide(a, route, now)
        if verdict == "hold":
            continue
        if verdict in ("drop", "mute"):
            status = RESOLVED if verdict == "mute" else a.sent_status
            conn.execute(
                "UPDATE notify_alerts SET pending_since = NULL, sent_status = ? "
                "WHERE route_id = ? AND dedup_key = ?",
                (status, a.route_id, a.key),
            )
            continue
        if quiet is not None:
            sev = _event_severity(conn, a.event_id)
            if not rules.breaks_quiet(a.kind, sev):
                continue
        out.append((a, verdict == "repeat"))
    if not out:
        return None
    return _message(conn, route, group_key.split("|")[0], out, now, base_url, digest=False)


def _event_severity(conn: sqlite3.Connection, event_id: int) -> str:
    row = conn.execute("SELECT severity FROM notify_events WHERE id = ?", (event_id,)).fetchone()
    return "info" if row is None else row[0]


def _digest(
    conn: sqlite3.Connection, route: store.Route, alerts: list[_Alert], now: float, base_url: str
) -> int | None:
    last = conn.execute(
        "SELECT last_digest_at, created_at FROM notify_routes WHERE id = ?", (route.id,)
    ).fetchone()
    if not rules.digest_due(route, now, last[0] if last[0] is not None else last[1]):
        return None
    conn.execute("UPDATE notify_routes SET last_digest_at = ? WHERE id = ?", (now, route.id))
    pending = [(a, False) for a in alerts if a.pending_since is not None]
    if not pending:
        return None
    return _message(conn, route, "", pending, now, base_url, digest=True)


def _message(
    conn: sqlite3.Connection,
    route: store.Route,
    where: str,
    items: list[tuple[_Alert, bool]],
    now: float,
    base_url: str,
    *,
    digest: bool,
) -> int:
    evs = [_event_json(conn, a.event_id, repeat, base_url) for a, repeat in items]
    for a, _ in items:
        stamp = "firing_sent_at" if a.status == FIRING else "resolved_sent_at"
        conn.execute(
            f"UPDATE notify_alerts SET pending_since = NULL, sent_status = ?, sent_kind = ?, "
            f"sent_at = ?, {stamp} = ? WHERE route_id = ? AND dedup_key = ?",
            (a.status, a.kind, now, now, a.route_id, a.key),
        )
    kinds = {e["type"] for e in evs}
    statuses = {e["status"] for e in evs}
    kind = "digest" if digest else (kinds.pop() if len(kinds) == 1 else "group")
    status = statuses.pop() if len(statuses) == 1 else "mixed"
    first = evs[0]
    place = first["site"] or (first["server"] or {}).get("hostname") or where or "the fleet"
    body = {
        "type": kind,
        "timestamp": _iso(now),
        "data": {
            "status": status,
            "severity": max((e["severity"] for e in evs), key=severity_rank),
            "summary": (
                f"daily digest: {len(evs)} events"
                if digest
                else texts.summary(kind, status, evs, place)
            ),
            "what_to_do": texts.advice(kind, status),
            "partner": _partner_name(conn, route.partner_id),
            "customer": first["customer"],
            "site": first["site"],
            "link": first["link"],
            "events": evs,
        },
    }
    mid = delivery.enqueue(conn, route.channel_id, route.id, kind, json.dumps(body), now)
    for a, _ in items:
        _log(conn, a.event_id, route.id, f"message:{mid}", now)
    return mid


def _partner_name(conn: sqlite3.Connection, partner_id: int) -> str:
    return partners.name_of(conn, partner_id) or ""


def _event_json(
    conn: sqlite3.Connection, event_id: int, repeat: bool, base_url: str
) -> dict[str, Any]:
    r = conn.execute(
        "SELECT e.id, e.kind, e.status, e.severity, e.dedup_key, e.server_id, e.subject, e.data, "
        "e.at, s.hostname, l.customer, l.site FROM notify_events e "
        "LEFT JOIN servers s ON s.id = e.server_id "
        "LEFT JOIN notify_server_labels l ON l.server_id = e.server_id WHERE e.id = ?",
        (event_id,),
    ).fetchone()
    details = json.loads(r[7])
    since = details.pop("since", None)
    link = f"{base_url.rstrip('/')}/servers/{r[5]}" if base_url and r[5] else None
    return {
        "id": f"evt_{r[0]}",
        "type": r[1],
        "status": r[2],
        "severity": r[3],
        "key": r[4],
        "subject": r[6],
        "server": None if r[5] is None else {"id": r[5], "hostname": r[9] or ""},
        "customer": r[10] or "",
        "site": r[11] or "",
        "at": _iso(r[8]),
        "since": _iso(since if since is not None else r[8]),
        "repeat": repeat,
        "details": details,
        "link": link,
    }

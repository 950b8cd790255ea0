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
from typing import Any

from collector.accounts import partners
from collector.health import servers
from collector.http import paths
from collector.notify import alerts, delivery, events, rules, store, texts
from collector.notify.alerts import Alert
from collector.notify.events import FIRING, RESOLVED, severity_rank
from collector.storage.round_locks import try_round_lock

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
        self.channel_customer = store.channel_customers(conn)

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
                else store.silences_since(self.conn, partner_id, self.now - 86400)
            )
        return self._silences[partner_id]

    def labels(self, server_id: str | None) -> tuple[str, str]:
        if server_id not in self._labels:
            self._labels[server_id] = (
                ("", "") if server_id is None else store.labels_of(self.conn, server_id)
            )
        return self._labels[server_id]


DISPATCH_ROUND = "notify-dispatch"
"""Routing and grouping run in one process at a time (each process's round tries)."""


def route_events(conn: sqlite3.Connection, now: float, limit: int = ROUTE_BATCH) -> int:
    """Route up to ``limit`` unrouted events, oldest first; return how many (0 while
    another process routes or groups: :mod:`collector.storage.round_locks`)."""
    if not try_round_lock(conn, DISPATCH_ROUND):
        return 0
    rows = events.unrouted(conn, limit)
    look = _Lookups(conn, now)
    n = 0
    for eid, kind, status, severity, key, partner_id, server_id, at in rows:
        if not events.claim(conn, eid, now):
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
            events.log_outcome(conn, eid, None, "no_route", now)
            continue
        silence = rules.silenced(look.silences(partner_id), at, server_id, customer, site)
        if silence is not None:
            for r in matched:
                events.log_outcome(conn, eid, r.id, f"silenced:{silence}", now)
            continue
        group = f"{site or server_id or 'partner'}|{kind}"
        for r in matched:
            alerts.note_event(conn, r.id, key, eid, status, kind, group, now)
            events.log_outcome(conn, eid, r.id, "digest" if r.digest else "queued", now)
    return n


def _decide(a: Alert, route: store.Route, now: float) -> str:
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


def flush(conn: sqlite3.Connection, now: float, base_url: str = "") -> list[int]:
    """Make the messages that are due; return their ids (none while another process
    routes or groups: it makes them)."""
    if not try_round_lock(conn, DISPATCH_ROUND):
        return []
    routes = {r.id: r for r in store.list_routes(conn, None)}
    groups: dict[tuple[int, str], list[Alert]] = defaultdict(list)
    for a in alerts.candidates(conn, now):
        if a.route_id not in routes:
            alerts.forget_route(conn, a.route_id)
            continue
        groups[(a.route_id, "digest" if routes[a.route_id].digest else a.group_key)].append(a)
    made: list[int] = []
    for (route_id, group_key), group in sorted(groups.items(), key=_first_pending):
        route = routes[route_id]
        if route.digest:
            mid = _digest(conn, route, group, now, base_url)
        else:
            mid = _group(conn, route, group_key, group, now, base_url)
        if mid is not None:
            made.append(mid)
    return made


def _first_pending(item: tuple[tuple[int, str], list[Alert]]) -> float:
    return min((a.pending_since or a.sent_at or 0.0) for a in item[1])


def _group(
    conn: sqlite3.Connection,
    route: store.Route,
    group_key: str,
    group: list[Alert],
    now: float,
    base_url: str,
) -> int | None:
    waiting = [a.pending_since for a in group if a.pending_since is not None]
    if waiting and min(waiting) + route.group_wait_s > now:
        return None
    quiet = rules.quiet_until(route, now)
    out: list[tuple[Alert, bool]] = []
    for a in group:
        verdict = _decide(a, route, now)
        if verdict == "hold":
            continue
        if verdict in ("drop", "mute"):
            alerts.settle(conn, a, RESOLVED if verdict == "mute" else a.sent_status)
            continue
        if quiet is not None:
            sev = events.severity_of(conn, a.event_id)
            if not rules.breaks_quiet(a.kind, sev):
                continue
        out.append((a, verdict == "repeat"))
    if not out:
        return None
    return _message(conn, route, group_key.split("|")[0], out, now, base_url, digest=False)


def _digest(
    conn: sqlite3.Connection, route: store.Route, group: list[Alert], now: float, base_url: str
) -> int | None:
    if not rules.digest_due(route, now, store.digest_base(conn, route.id)):
        return None
    store.set_digest_sent(conn, route.id, now)
    pending = [(a, False) for a in group if a.pending_since is not None]
    if not pending:
        return None
    return _message(conn, route, "", pending, now, base_url, digest=True)


def _message(
    conn: sqlite3.Connection,
    route: store.Route,
    where: str,
    items: list[tuple[Alert, bool]],
    now: float,
    base_url: str,
    *,
    digest: bool,
) -> int:
    evs = [_event_json(conn, a.event_id, repeat, base_url) for a, repeat in items]
    for a, _ in items:
        alerts.mark_sent(conn, a, now, firing=a.status == FIRING)
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
        events.log_outcome(conn, a.event_id, route.id, f"message:{mid}", now)
    return mid


def _partner_name(conn: sqlite3.Connection, partner_id: int) -> str:
    return partners.name_of(conn, partner_id) or ""


def _event_json(
    conn: sqlite3.Connection, event_id: int, repeat: bool, base_url: str
) -> dict[str, Any]:
    r = events.event_row(conn, event_id)
    customer, site = ("", "") if r[5] is None else store.labels_of(conn, r[5])
    hostname = None if r[5] is None else servers.hostname_of(conn, r[5])
    details = json.loads(r[7])
    since = details.pop("since", None)
    link = (
        base_url.rstrip("/") + paths.SERVER_PAGE.format(server_id=r[5])
        if base_url and r[5]
        else None
    )
    return {
        "id": f"evt_{r[0]}",
        "type": r[1],
        "status": r[2],
        "severity": r[3],
        "key": r[4],
        "subject": r[6],
        "server": None if r[5] is None else {"id": r[5], "hostname": hostname or ""},
        "customer": customer or "",
        "site": site or "",
        "at": _iso(r[8]),
        "since": _iso(since if since is not None else r[8]),
        "repeat": repeat,
        "details": details,
        "link": link,
    }

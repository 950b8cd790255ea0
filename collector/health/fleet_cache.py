"""The fleet view of each partner, kept between reads and checked against the database on
every read, so that the fleet page and ``GET /api/v1/servers`` of a 10,000-server
partner do not rebuild 10,000 views (server rows, contract coverage, backup status) for
every request.

A kept answer is used only when both hold:

- **nothing it was built from changed**: each read fetches the inputs' *fingerprint*
  (each server's report position, intervals, licence, revocation and backup times; the
  partner's contracts' versions; the backup policies; the partners' report intervals;
  the refused clocks), a few milliseconds of narrow SQL, and compares it with the kept
  one. A report, a contract or a policy change therefore shows at the next read, whichever
  collector process wrote it: correctness never depends on a timer or on telling this
  process about a write;
- **time alone changed no view**: the answer carries the earliest instant at which a view
  would change with the clock only (a server passing its offline limit, a recording
  volume's forecast entering the warning window, a backup falling due) and the next
  quarter hour, where a new day may begin in some contract's time zone (coverage and days
  left are per day). Views whose words change with every second (an offline server's "no
  report for N s", a volume "full within N h") are rebuilt on each read from their kept
  server row.

The views handed out are shared with the kept answer and with other readers: a caller
copies a view before it changes it (a kept view is replaced, never changed, when it
follows the clock or a report).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from collector.backups import catalog
from collector.contracts import repository as contracts_repo
from collector.health import servers, status
from collector.health.fleet import FleetView
from collector.health.servers import ServerRow

DAY_STEP_S = 900
"""Every UTC offset in use is a multiple of 15 minutes: a day starts in some zone only on
such a boundary, so a kept answer is rebuilt past the next one."""
MAX_ENTRIES = 256
"""Partners whose fleet is kept (the least recently built is dropped first)."""


BULK_SHARE, BULK_MIN = 0.05, 50
"""Past this share of servers (and this many) reported since the kept answer, their rows
are read in one query rather than one by one."""

STATIC, OFFLINE, TIMED = 0, 1, 2
"""How a kept view follows the clock: not until its horizon; an offline server's words
only; rebuilt on every read (a recording volume in its forecast's warning window)."""


@dataclass
class _Entry:
    shared: Hashable
    """The inputs every view depends on (contracts, policies, partners, settings)."""
    servers: dict[str, tuple[Any, ...]]
    """Server id -> its ``_SERVER_SQL`` row: what reports change, then everything else."""
    views: list[dict[str, Any]]
    rows: list[ServerRow]
    kinds: list[int]
    horizons: list[float]
    index: dict[str, int]
    day_ends: float
    lock: threading.Lock
    shape: int = 0
    """Moves whenever a view's status, software, backup or contract changes (not when only
    an offline server's words do): what :meth:`FleetCache.derived` answers for."""
    derived: dict[Hashable, tuple[int, Any]] = field(default_factory=dict)


_SERVER_SQL = (
    "SELECT s.id, s.last_seen, s.last_seq, s.reports_received, s.told_interval_s, "
    "s.told_grace_s, s.partner_id, s.hostname, s.machine_id, s.revoked_at, s.report_interval_s, "
    "s.licence_id, s.enrolled_at, b.last_stored_at, b.last_ok_at, b.last_failed_at, "
    "b.last_failed_reason FROM servers s LEFT JOIN backup_status b ON b.server_id = s.id"
)
_POSITION = 6
"""Columns of ``_SERVER_SQL`` before this one move with every report (after the id)."""


def fingerprint(
    conn: Any, fleet: FleetView, partner_id: int | None
) -> tuple[Hashable, dict[str, tuple[Any, ...]]]:
    """Everything :meth:`FleetView.all` reads that a write can change, in narrow columns:
    (what all views share, per server id its ``_SERVER_SQL`` row)."""
    rows = (
        conn.execute(_SERVER_SQL).fetchall()
        if partner_id is None
        else conn.execute(_SERVER_SQL + " WHERE s.partner_id = ?", (partner_id,)).fetchall()
    )
    per_server = {t[0]: t for t in map(tuple, rows)}
    partner = None if partner_id is None else fleet.partner_names.get(partner_id)
    contracts = contracts_repo.contracts_fingerprint(conn, partner)
    policies = catalog.policy_rows(conn)
    shared = (
        tuple(tuple(r) for r in contracts),
        tuple(tuple(r) for r in policies),
        tuple(sorted(fleet.partner_intervals.items())),
        tuple(sorted(fleet.partner_names.items())),
        tuple(sorted(fleet.clock_offsets.items())),
        fleet.default_interval,
        fleet.offline_after,
    )
    return shared, per_server


def _follow(fleet: FleetView, row: ServerRow, view: dict[str, Any], t0: float) -> tuple[int, float]:
    """How ``view`` (built at ``t0``) follows the clock: (kind, until when it holds)."""
    until = math.inf
    backup = view.get("backup")
    if backup and backup.get("next_due") is not None and t0 <= backup["next_due"]:
        until = backup["next_due"]
    if row.revoked_at is not None or row.last_seen is None:
        return STATIC, until
    if view["status"] == "offline":
        return OFFLINE, until
    interval = row.told_interval_s or fleet.interval(row)
    until = min(until, row.last_seen + fleet.offline_after * interval + (row.told_grace_s or 0))
    if view["status"] == "unmonitored":
        return STATIC, until
    for vol in view["volumes"]:
        if vol.full_at is not None and vol.recording and not vol.error:
            warn_at = vol.full_at - status.FULL_WARN_S
            if t0 >= warn_at:
                return TIMED, until
            until = min(until, warn_at)
    return STATIC, until


def _shape(view: dict[str, Any]) -> tuple[Any, ...]:
    return (view["status"], view["software"], view["backup"], view["contract"])


def _backup_at(backup: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """A kept backup summary at ``now``: due and not stored means overdue (as
    :func:`collector.backups.status.fleet_backup_status` says)."""
    if backup is None or backup["next_due"] is None or backup["overdue"]:
        return backup
    if now > backup["next_due"]:
        return {**backup, "overdue": True, "state": "overdue"}
    return backup


def _reported_since(
    entry: _Entry, shared: Hashable, per_server: dict[str, tuple[Any, ...]], now: float
) -> list[str] | None:
    """The servers whose only change since ``entry`` was built is a report; None when
    anything else changed and the answer is to be built anew."""
    if shared != entry.shared or now >= entry.day_ends or per_server.keys() != entry.servers.keys():
        return None
    reported = []
    for sid, now_row in per_server.items():
        kept = entry.servers[sid]
        if now_row != kept:
            if now_row[_POSITION:] != kept[_POSITION:]:
                return None  # not only a report: re-enrolled, revoked, a backup
            reported.append(sid)
    return reported


def _bring_forward(entry: _Entry, i: int, fleet: FleetView, now: float) -> None:
    """Row ``i``'s view at ``now`` (the caller holds ``entry.lock``): an offline server's
    reason and backup age are updated in place, any other view is made anew."""
    view, kind, row = entry.views[i], entry.kinds[i], entry.rows[i]
    if kind == OFFLINE and entry.horizons[i] != -math.inf:
        interval = row.told_interval_s or fleet.interval(row)
        assert row.last_seen is not None
        reasons = [
            *view["status_reasons"][:-1],
            status.offline_reason(now - row.last_seen, interval),
        ]
        if _backup_at(view["backup"], now) is not view["backup"]:
            entry.shape += 1
        entry.views[i] = {
            **view,
            "status_reasons": reasons,
            "backup": _backup_at(view["backup"], now),
        }
        return
    fresh = fleet.view(row, now)
    fresh["backup"] = _backup_at(view["backup"], now)
    fresh["contract"] = view["contract"]
    if _shape(fresh) != _shape(view):
        entry.shape += 1
    entry.views[i] = fresh
    entry.kinds[i], entry.horizons[i] = _follow(fleet, row, fresh, now)


class FleetCache:
    """Kept fleet views per partner (``None``: every partner's), for one process."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[int | None, _Entry] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.hits = 0
        self.builds = 0

    def views(self, fleet: FleetView, partner_id: int | None, now: float) -> list[dict[str, Any]]:
        """What ``fleet.all(partner_id, now)`` answers, from the kept answer where it holds."""
        shared, per_server = fingerprint(fleet.conn, fleet, partner_id)
        with self._lock:
            entry = self._entries.get(partner_id)
        if entry is not None and self._follow_up(entry, fleet, shared, per_server, now, partner_id):
            self.hits += 1
            return list(entry.views)
        self.builds += 1
        entry = self._build(fleet, partner_id, now, shared, per_server)
        with self._lock:
            self._entries.pop(partner_id, None)
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[partner_id] = entry
        return list(entry.views)

    def derived(
        self,
        partner_id: int | None,
        name: Hashable,
        views: list[dict[str, Any]],
        compute: Callable[[list[dict[str, Any]]], Any],
    ) -> Any:
        """``compute(views)`` (``views``: what :meth:`views` just answered for
        ``partner_id``), kept under ``name`` until a view's status, software, backup or
        contract changes. ``compute`` must depend on nothing else of a view (say, its
        words) and must not keep the views themselves (indexes into them are fine)."""
        with self._lock:
            entry = self._entries.get(partner_id)
        if entry is None:
            return compute(views)
        with entry.lock:
            if len(views) != len(entry.views) or any(
                a is not b for a, b in zip(views, entry.views, strict=True)
            ):
                return compute(views)  # the kept answer moved on since
            kept = entry.derived.get(name)
            if kept is not None and kept[0] == entry.shape:
                return kept[1]
            value = compute(views)
            entry.derived[name] = (entry.shape, value)
            return value

    def _follow_up(
        self,
        entry: _Entry,
        fleet: FleetView,
        shared: Hashable,
        per_server: dict[str, tuple[Any, ...]],
        now: float,
        partner_id: int | None,
    ) -> bool:
        """Bring the kept views to ``now`` and to the servers' reports since; False when
        the kept answer cannot be brought forward (then it is built anew)."""
        reported = _reported_since(entry, shared, per_server, now)
        if reported is None:
            return False
        rows: dict[str, ServerRow] | None = None
        if len(reported) > max(BULK_MIN, BULK_SHARE * len(per_server)):
            rows = {r.id: r for r in servers.list_for(fleet.conn, partner_id)}
        with entry.lock:
            for sid in reported:
                row = servers.get(fleet.conn, sid) if rows is None else rows.get(sid)
                if row is None:
                    return False
                i = entry.index[sid]
                entry.rows[i] = row
                entry.horizons[i] = -math.inf  # rebuilt below
                entry.servers[sid] = per_server[sid]
            for i in range(len(entry.views)):
                if entry.kinds[i] == STATIC and now < entry.horizons[i]:
                    continue
                _bring_forward(entry, i, fleet, now)
        return True

    def _build(
        self,
        fleet: FleetView,
        partner_id: int | None,
        now: float,
        shared: Hashable,
        per_server: dict[str, tuple[Any, ...]],
    ) -> _Entry:
        rows = servers.list_for(fleet.conn, partner_id)
        views = fleet.from_rows(rows, partner_id, now)
        kinds, horizons = [], []
        for row, v in zip(rows, views, strict=True):
            kind, until = _follow(fleet, row, v, now)
            kinds.append(kind)
            horizons.append(until)
        return _Entry(
            shared=shared,
            servers=per_server,
            views=views,
            rows=rows,
            kinds=kinds,
            horizons=horizons,
            index={r.id: i for i, r in enumerate(rows)},
            day_ends=(now // DAY_STEP_S + 1) * DAY_STEP_S,
            lock=threading.Lock(),
        )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


FLEET_CACHE: web.AppKey[FleetCache] = web.AppKey("fleet_cache", FleetCache)


def setup(app: web.Application) -> None:
    app[FLEET_CACHE] = FleetCache()

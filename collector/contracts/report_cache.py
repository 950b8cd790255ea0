"""Monthly reports of months that are over, kept per (partner, month, grouping, time zone)
and checked against the database on every read, so that the report page, its CSV and
PDF and ``GET /api/v1/reports/monthly`` of a 10,000-server partner do not evaluate every
server's month again for each request.

A past month's report changes only when what it was computed from changes: a contract
written or removed, an incident opened or updated, a server enrolled, revoked, re-
licensed or updated to another version (or a version it ran recorded), a backup policy
or release date changed, history pruned, or a report or backup recorded late with a time
inside the month. Each read fetches the *fingerprint* of those inputs (narrow SQL: a row
per server without its stored state's other parts, aggregates of the other tables) and
uses the kept report only when it equals the kept one, so any collector process's write
shows at the next read. The backup policy overrides are worded from today's contract
coverage, so a kept report is also computed anew past each quarter hour (where a day may
begin in some zone).

The current month is never kept: it counts up to the moment of the request. Nor is a
month that ended within the last hour (the checks still read the backups kept now).

So that a partner opening the report page does not wait for it to be computed, every
process keeps the reports people read warm in the background (:func:`setup`): at start
last month's report as the page shows it, for the vendor's view and the partners with
the most servers, and then, every ``[contracts] report_refresh_s`` (a minute), each
report read in the last day whose kept copy has expired or whose inputs changed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from collector.accounts import partners
from collector.backups import catalog
from collector.contracts import repository as repo
from collector.contracts import server_versions
from collector.contracts.config import contracts_config
from collector.contracts.reports import ReportRow, month_bounds
from collector.contracts.views import build_report
from collector.health import history, servers
from collector.http.appkeys import CONFIG, DB
from collector.supervision import TASKS

DAY_STEP_S = 900
"""A kept report holds until the next quarter hour (a day may begin in some zone)."""
SETTLED_S = 3600
"""A month is kept only this long after its end: until then the checks read the backups
kept now (:func:`collector.contracts.repository.fleet_facts`)."""
MAX_ENTRIES = 32
"""Reports kept (the least recently built is dropped first); one of 10,000 servers
holds their per-server details, a few MB."""
PAGE_TZ = "Europe/Berlin"
"""The time zone of the report page's months (the API takes one as a parameter)."""
READ_WITHIN_S = 86400.0
"""A report is kept warm while someone read it within this long."""
WARM_AT_START = MAX_ENTRIES // 2
"""Partners (the largest first) whose last month is computed when the process starts."""


@dataclass
class MonthlyReport:
    """A month's rows and what was rendered from them (kept with a kept report: the
    rows are shared with other readers, never to be changed)."""

    rows: list[ReportRow]
    _rendered: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rendered(self, name: str, render: Callable[[list[ReportRow]], Any]) -> Any:
        """``render(rows)``, once per ``name`` for this report."""
        with self._lock:
            if name not in self._rendered:
                self._rendered[name] = render(self.rows)
            return self._rendered[name]


@dataclass
class _Entry:
    fingerprint: tuple[Any, ...]
    """Compared with ``==`` (it holds a dict: server id -> its row)."""
    holds_until: float
    report: MonthlyReport


def fingerprint(conn: Any, partner: str | None, start: float, end: float) -> tuple[Any, ...]:
    """Everything :func:`collector.contracts.views.build_report` reads for a month that
    is over (``[start, end)``) that a write can change, ``partner``'s or every partner's.

    Each server as the report reads it, its stored state for its software only (a
    report's other changes to the state and to ``last_seen`` change no figure of a month
    that is over, once the server had reported in it); aggregates of the other tables."""
    with repo.plain_rows(conn):
        return _fingerprint(conn, partner, start, end)


def _fingerprint(conn: Any, partner: str | None, start: float, end: float) -> tuple[Any, ...]:
    servers_rows = _server_rows(conn, partner, start)
    ids = sorted(servers_rows)
    others = (
        repo.release_rows(conn),
        catalog.policy_rows(conn),
        [(name,) for name in partners.names(conn)],
    )
    return (
        servers_rows,
        _rows(repo.contract_totals(conn, partner)),
        _rows(repo.incident_totals(conn, partner)),
        _rows(catalog.window_totals(conn, start, end)),
        tuple(_rows(rows) for rows in others),
        history.oldest_time(conn),
        server_versions.totals(conn),
        _rows(history.window_totals(conn, ids if partner is not None else None, start, end)),
    )


def _server_rows(conn: Any, partner: str | None, start: float) -> dict[str, tuple[Any, ...]]:
    """Server id -> its row, the stored state reduced to its software's product and version
    (none when ``partner`` is not a partner)."""
    partner_id = None if partner is None else partners.id_by_name(conn, partner)
    if partner is not None and partner_id is None:
        return {}
    out = {}
    for r in servers.report_inputs(conn, start, partner_id):
        software = repo.stored_software(r[7])
        out[r[0]] = (*r[1:7], str(software.get("product")), str(software.get("version")))
    return out


def _rows(rows: Sequence[Any]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(r) for r in rows)


_Key = tuple[str | None, int, int, str, str]
"""(partner or None for every partner's, year, month, grouping, time zone)."""


class ReportCache:
    """Kept monthly reports of months that are over, for one process."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[_Key, _Entry] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.hits = 0
        self.builds = 0
        """Reports computed for a reader (a request)."""
        self.refreshed = 0
        """Reports computed in the background (:meth:`refresh`, :meth:`warm`)."""
        self._read_at: dict[_Key, float] = {}

    def report(
        self,
        conn: Any,
        year: int,
        month: int,
        by: str,
        partner: str | None,
        tz: str,
        now: float,
        *,
        read: bool = True,
    ) -> MonthlyReport:
        """What ``build_report(conn, year, month, by, partner, tz, now)`` answers, from the
        kept report where it holds. ``read``: someone asked for it (a background refresh
        does not count as reading)."""
        start, end, _ = month_bounds(year, month, tz)
        if now < end + SETTLED_S:
            return MonthlyReport(build_report(conn, year, month, by, partner, tz, now))
        key: _Key = (partner, year, month, by, tz)
        if read:
            with self._lock:
                self._read_at[key] = now
        fp = fingerprint(conn, partner, start, end)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry.fingerprint == fp and now < entry.holds_until:
            if read:
                self.hits += 1
            return entry.report
        rows = build_report(conn, year, month, by, partner, tz, now)
        entry = _Entry(fp, (now // DAY_STEP_S + 1) * DAY_STEP_S, MonthlyReport(rows))
        with self._lock:  # counted once kept, so a count seen means the report is there
            if read:
                self.builds += 1
            else:
                self.refreshed += 1
            self._entries.pop(key, None)
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = entry
        return entry.report

    def refresh(self, conn: Any, now: float) -> int:
        """Bring up to date each kept report read within :data:`READ_WITHIN_S`; forget
        the others. How many were computed anew."""
        with self._lock:
            for key, at in list(self._read_at.items()):
                if now - at > READ_WITHIN_S:
                    del self._read_at[key]
                    self._entries.pop(key, None)
            keys = list(self._read_at)
        before = self.refreshed
        for partner, year, month, by, tz in keys:
            self.report(conn, year, month, by, partner, tz, now, read=False)
        return self.refreshed - before

    def warm(self, conn: Any, now: float) -> int:
        """Compute last month's report as the page shows it, for the vendor's view and the
        :data:`WARM_AT_START` partners with the most servers, to be kept warm as if read."""
        year, month = last_month(now, PAGE_TZ)
        counts = servers.active_counts_by_partner(conn)
        named = {p.id: p.name for p in partners.customer_partners(conn)}
        largest = sorted((pid for pid in counts if pid in named), key=lambda pid: -counts[pid])
        largest = largest[:WARM_AT_START]
        before = self.refreshed
        for whose in [None, *(named[pid] for pid in largest)]:
            self.report(conn, year, month, "customer", whose, PAGE_TZ, now, read=False)
            with self._lock:
                self._read_at.setdefault((whose, year, month, "customer", PAGE_TZ), now)
        return self.refreshed - before

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._read_at.clear()


def last_month(now: float, tz: str) -> tuple[int, int]:
    """(year, month) of the month before the one ``now`` falls in, in ``tz``."""
    today = dt.datetime.fromtimestamp(now, ZoneInfo(tz)).date()
    before = today.replace(day=1) - dt.timedelta(days=1)
    return before.year, before.month


REPORT_CACHE: web.AppKey[ReportCache] = web.AppKey("report_cache", ReportCache)


async def _keep_warm(app: web.Application) -> AsyncIterator[None]:
    interval = contracts_config(app[CONFIG].raw).report_refresh_s
    if not interval:
        yield
        return
    cache, db = app[REPORT_CACHE], app[DB]
    state = {"warmed": False}

    async def round() -> None:
        now = time.time()
        if not state["warmed"]:
            await db.read(lambda c: cache.warm(c, now))
            state["warmed"] = True
        await db.read(lambda c: cache.refresh(c, now))

    # Every process keeps its own reports: each runs the round. A read computes what is
    # not kept, so a failing round slows the report page down and stops nothing else.
    handle = app[TASKS].every(
        "report-cache", interval, round, first_delay_s=1.0, everywhere=True, essential=False
    )
    yield
    await handle.stop()


def setup(app: web.Application) -> None:
    app[REPORT_CACHE] = ReportCache()
    app.cleanup_ctx.append(_keep_warm)

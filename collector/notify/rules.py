"""What a route takes and when it may speak: kind and severity filters, customer and site,
silences, quiet hours and the daily digest time. Pure functions over plain values."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from collector.notify.events import severity_rank
from collector.notify.store import Route

BREAKS_QUIET = frozenset({"sla.breached"})
"""Kinds sent during quiet hours whatever their severity (critical ones always are)."""


def matches(route: Route, kind: str, severity: str, customer: str, site: str) -> bool:
    if severity_rank(severity) < severity_rank(route.min_severity):
        return False
    if route.customer and route.customer != customer:
        return False
    if route.site and route.site != site:
        return False
    return any(fnmatch.fnmatchcase(kind, k.strip()) for k in route.kinds.split(",") if k.strip())


def silenced(
    silences: Iterable[Mapping[str, Any]],
    at: float,
    server_id: str | None,
    customer: str,
    site: str,
) -> int | None:
    """The id of a silence that covers an event at ``at``, or None."""
    for s in silences:
        if not s["starts_at"] <= at < s["ends_at"]:
            continue
        scope, value = s["scope"], s["value"]
        if (
            scope == "partner"
            or (scope == "server" and value == server_id)
            or (scope == "customer" and customer and value == customer)
            or (scope == "site" and site and value == site)
        ):
            return int(s["id"])
    return None


def _minutes(hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return int(h) * 60 + int(m)


def quiet_until(route: Route, now: float) -> float | None:
    """When the route's quiet hours end, if ``now`` is inside them; else None."""
    if not route.quiet_from:
        return None
    zone = ZoneInfo(route.timezone)
    local = dt.datetime.fromtimestamp(now, zone)
    start, end = _minutes(route.quiet_from), _minutes(route.quiet_until)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    if not inside:
        return None
    end_day = local.date()
    if start > end and minute >= start:
        end_day += dt.timedelta(days=1)
    end_local = dt.datetime.combine(end_day, dt.time(end // 60, end % 60), zone)
    return end_local.timestamp()


def breaks_quiet(kind: str, severity: str) -> bool:
    return severity == "critical" or kind in BREAKS_QUIET


def digest_due(route: Route, now: float, last_digest_at: float | None) -> bool:
    """Is the route's daily digest due: the digest hour has passed today (in the route's
    zone) and none was made since then."""
    zone = ZoneInfo(route.timezone)
    local = dt.datetime.fromtimestamp(now, zone)
    today = dt.datetime.combine(local.date(), dt.time(route.digest_hour), zone).timestamp()
    if now < today:
        today -= 86400
    return last_digest_at is None or last_digest_at < today

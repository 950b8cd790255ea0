"""When the next backup is due: a pure function of interval, window, server id and the last run.

- Jitter is deterministic per server (from a hash of its id), so a fleet configured with
  the same window does not start at the same second, and a server keeps its place.
- A run missed while the agent was down (last run older than one interval) is due soon
  after the agent starts: within a few minutes, spread by the same jitter.
- The window ``HH:MM-HH:MM`` is in local time (the recording server's), may cross midnight,
  and is computed with real time zone rules, so a DST switch moves no run out of it.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, tzinfo

from protocol.backup_window import parse_window

STARTUP_SPREAD_S = 300.0
"""A missed or first run starts within this many seconds after the agent (spread by jitter)."""


def jitter_fraction(server_id: str) -> float:
    """A stable number in [0, 1) for this server."""
    digest = hashlib.sha256(b"vigil-backup-jitter\n" + server_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _window_length_s(win: tuple[time, time]) -> float:
    length = (_minutes(win[1]) - _minutes(win[0])) % (24 * 60)
    return length * 60.0


def _local(ts: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(ts, tz) if tz else datetime.fromtimestamp(ts).astimezone()


def in_window(ts: float, win: tuple[time, time], tz: tzinfo | None = None) -> bool:
    m = _local(ts, tz)
    now = m.hour * 60 + m.minute + m.second / 60
    start, end = _minutes(win[0]), _minutes(win[1])
    if start < end:
        return start <= now < end
    return now >= start or now < end


def _window_start_on(day: date, win: tuple[time, time], tz: tzinfo | None) -> float:
    if tz is not None:
        return datetime.combine(day, win[0], tzinfo=tz).timestamp()
    return datetime.combine(day, win[0]).astimezone().timestamp()  # naive = local time


def next_window_start(ts: float, win: tuple[time, time], tz: tzinfo | None = None) -> float:
    """The first start of the window strictly after ``ts``."""
    day = _local(ts, tz).date()
    for add in range(3):
        t = _window_start_on(day + timedelta(days=add), win, tz)
        if t > ts:
            return t
    raise AssertionError("unreachable: a window starts within two days")


def next_run_time(
    *,
    interval_s: float,
    window: str,
    server_id: str,
    last_run: float | None,
    now: float,
    tz: tzinfo | None = None,
) -> float | None:
    """Epoch seconds of the next backup run, or None when backups are off (interval 0).

    ``last_run`` is the start time of the last run that reached an outcome (ok, unchanged
    or failed), None if there never was one.
    """
    if interval_s <= 0:
        return None
    win = parse_window(window)
    frac = jitter_fraction(server_id)
    overdue = last_run is None or last_run + interval_s <= now
    if overdue:
        due = now + frac * min(STARTUP_SPREAD_S, interval_s / 10)
    else:
        due = last_run + interval_s  # type: ignore[operator]
    if win is None or in_window(due, win, tz):
        return due
    # Outside the window: the server's slot in a window, spread over the first half of the
    # window (never more than half an interval, so short intervals keep their rhythm).
    spread = min(_window_length_s(win) / 2, interval_s / 2)
    if not overdue:
        # Prefer the slot in the window just before ``due`` when it is still at least half
        # an interval after the last run: a daily backup run once at 11:00 by hand (or
        # first run outside the window) is not pushed to the day after next.
        before = _window_start_on(_local(due, tz).date(), win, tz)
        if before > due:
            before = _window_start_on(_local(due, tz).date() - timedelta(days=1), win, tz)
        slot = before + frac * spread
        if now <= slot <= due and slot >= last_run + interval_s / 2:  # type: ignore[operator]
            return slot
    return next_window_start(due, win, tz) + frac * spread

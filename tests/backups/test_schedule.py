"""The schedule is a pure function: interval, window, per-server jitter, last run."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent.backup.schedule import (
    STARTUP_SPREAD_S,
    in_window,
    jitter_fraction,
    next_run_time,
)
from protocol.backup_window import WindowError, parse_window

TZ = ZoneInfo("Europe/Berlin")


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()


def local(t: float) -> datetime:
    return datetime.fromtimestamp(t, TZ)


def test_off_when_interval_zero() -> None:
    assert next_run_time(interval_s=0, window="", server_id="a", last_run=None, now=0) is None


def test_regular_interval_without_window() -> None:
    now = ts(2026, 5, 4, 12, 0)
    due = next_run_time(interval_s=3600, window="", server_id="a", last_run=now - 600, now=now)
    assert due == now + 3000


def test_missed_run_is_due_soon_after_start() -> None:
    now = ts(2026, 5, 4, 12, 0)
    for last in (None, now - 3 * 86400):
        due = next_run_time(interval_s=86400, window="", server_id="a", last_run=last, now=now)
        assert due is not None and now <= due <= now + STARTUP_SPREAD_S


def test_jitter_is_deterministic_and_spreads_a_fleet() -> None:
    assert jitter_fraction("srv-1") == jitter_fraction("srv-1")
    now = ts(2026, 5, 4, 12, 0)
    dues = {
        next_run_time(
            interval_s=86400, window="01:00-05:00", server_id=f"srv-{i}", last_run=None, now=now
        )
        for i in range(200)
    }
    assert len(dues) == 200
    spread = max(dues) - min(dues)  # type: ignore[type-var]
    assert spread > 3600  # spread over the first half of the 4 h window, not one instant


def test_window_is_respected_and_crosses_midnight() -> None:
    now = ts(2026, 5, 4, 12, 0)
    due = next_run_time(
        interval_s=86400, window="22:00-04:00", server_id="b", last_run=None, now=now, tz=TZ
    )
    assert due is not None and in_window(due, parse_window("22:00-04:00"), TZ)  # type: ignore[arg-type]
    assert local(due).hour in (22, 23, 0, 1)


def test_daily_run_outside_window_keeps_daily_rhythm() -> None:
    # run by hand at 11:00: the next is in the next night's window, not two nights later
    now = ts(2026, 5, 4, 12, 0)
    due = next_run_time(
        interval_s=86400, window="01:00-05:00", server_id="c", last_run=now - 3600, now=now, tz=TZ
    )
    assert due is not None and local(due).date() == datetime(2026, 5, 5).date()
    assert 1 <= local(due).hour < 5


def test_dst_switch_night_stays_in_window() -> None:
    # 2026-03-29: clocks go from 02:00 to 03:00 in Berlin
    now = ts(2026, 3, 28, 12, 0)
    for sid in ("a", "b", "c", "d"):
        due = next_run_time(
            interval_s=86400, window="01:00-05:00", server_id=sid, last_run=now - 60, now=now, tz=TZ
        )
        assert due is not None and 1 <= local(due).hour < 5 and local(due).day == 29


def test_bad_window() -> None:
    with pytest.raises(WindowError):
        parse_window("25:00-xx")
    assert parse_window("") is None

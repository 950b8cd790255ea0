"""Storage fill rate and the day a volume is full."""

from __future__ import annotations

import pytest

from agent.health.forecast import DAY, fill_rate, full_at, keep_sample


def test_linear_growth_gives_its_rate_and_full_date() -> None:
    samples = [(i * 3600.0, 1_000_000 + i * 10_000) for i in range(48)]  # 10 kB an hour
    rate = fill_rate(samples)
    assert rate == pytest.approx(240_000)
    assert full_at(0.0, 2_400_000, rate) == pytest.approx(10 * DAY)


def test_not_enough_history_or_shrinking_gives_no_forecast() -> None:
    assert fill_rate([(0.0, 1)]) is None
    assert fill_rate([(0.0, 1), (60.0, 2)]) is None  # a minute says nothing
    shrinking = [(i * 3600.0, 1000 - i) for i in range(10)]
    assert fill_rate(shrinking) < 0
    assert full_at(0.0, 100, fill_rate(shrinking)) is None


def test_only_the_window_counts() -> None:
    old_fast = [(i * 3600.0, i * 1_000_000) for i in range(24)]
    recent_flat = [(30 * DAY + i * 3600.0, 50_000_000) for i in range(24)]
    assert fill_rate(old_fast + recent_flat, window_s=2 * DAY) == pytest.approx(0)


def test_samples_are_thinned_and_aged_out() -> None:
    s: list[tuple[float, int]] = []
    for t in range(0, 3600, 60):
        s = keep_sample(s, float(t), t)
    assert len(s) == 6  # every 10 minutes
    s = keep_sample(s, 40 * DAY, 0)
    assert s == [(40 * DAY, 0)]

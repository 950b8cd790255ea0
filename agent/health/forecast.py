"""When will a volume be full? Least-squares fill rate over recent samples: pure functions."""

from __future__ import annotations

DAY = 86400.0
MIN_SPAN_S = 3600.0
"""A rate from samples less than an hour apart says nothing."""


def fill_rate(samples: list[tuple[float, int]], window_s: float = 7 * DAY) -> float | None:
    """Bytes per day that ``used`` grows, by linear regression over ``(time, used)``
    samples in the last ``window_s``; None until the samples span an hour."""
    if len(samples) < 2:
        return None
    end = samples[-1][0]
    pts = [(t, u) for t, u in samples if t >= end - window_s]
    if len(pts) < 2 or pts[-1][0] - pts[0][0] < MIN_SPAN_S:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mu = sum(u for _, u in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var == 0:
        return None
    slope = sum((t - mt) * (u - mu) for t, u in pts) / var
    return slope * DAY


def full_at(now: float, free: int, rate_per_day: float | None) -> float | None:
    """When ``free`` bytes run out at ``rate_per_day``; None if the volume is not filling."""
    if rate_per_day is None or rate_per_day <= 0:
        return None
    return now + free / rate_per_day * DAY


def keep_sample(
    samples: list[tuple[float, int]],
    t: float,
    used: int,
    min_gap_s: float = 600.0,
    max_age_s: float = 30 * DAY,
) -> list[tuple[float, int]]:
    """Add a sample at most every ``min_gap_s``; keep ``max_age_s`` of them (bounded state)."""
    if samples and t - samples[-1][0] < min_gap_s:
        return samples
    out = [s for s in samples if s[0] >= t - max_age_s]
    out.append((t, used))
    return out

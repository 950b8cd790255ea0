"""When the agent's first report goes out: spread over the first interval, not at once.

Every agent's first report after it starts carries the whole camera inventory. Agents
that start together (a site powered back on, a package upgrade rolled out to a fleet, a
collector back after an outage whose agents were restarted with it) would otherwise all
send that report in the same second. Each agent waits a random delay, drawn uniformly
below the smaller of its report interval and ``[report] first_spread_s`` (300 s by
default), so the crowd arrives spread over that window; ``first_spread_s = 0`` or
``vigil-agent run --report-now`` sends the first report at once.
"""

from __future__ import annotations

import random

DEFAULT_SPREAD_S = 300.0
"""``[report] first_spread_s`` unless set: the longest an agent waits for its first report."""


def first_report_delay(
    spread_s: float, interval_s: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before the first report: uniform from 0 to min(spread, interval)."""
    bound = min(spread_s, interval_s)
    if bound <= 0:
        return 0.0
    return (rng or random).random() * bound

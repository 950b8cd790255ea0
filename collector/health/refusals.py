"""Refused agents, said in the log without flooding it; agents' clock offsets, remembered.

An agent refused for good reason (unknown server after the database was recreated, a
revoked key, a stale clock, a bad signature) retries for ever; the operator must learn
of it from the log, once, not once per retry. :class:`RefusalLog` logs the first refusal
of each (server, reason) and then at most one line per ``window_s`` with the number of
refusals it did not log.

:class:`ClockOffsets` remembers, per server, how far off its clock was when its request
was refused as stale — only after its signature verified, so nobody else can put a
number on a partner's server. A partner then sees "clock off by N s" on the server
instead of a "pending" or "offline" without a reason. A request of the server that is
accepted again forgets it. Both are bounded: the oldest entries go first.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("vigil.collector.refusals")

MAX_ENTRIES = 10_000
FORGET_OFFSET_AFTER_S = 86_400.0


class RefusalLog:
    """At most one log line per (server, reason) per ``window_s``."""

    def __init__(
        self,
        window_s: float = 600.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self.max_lines_per_window = 100
        """Across all keys (ids an attacker makes up are keys too)."""
        self._window_start = 0.0
        self._lines = 0
        self._dropped = 0

    def note(self, who: str, reason: str, detail: str) -> bool:
        """Count one refusal of ``who`` for ``reason``; True when it was logged."""
        key = (who, reason)
        now = self.clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window_s:
            entry[1] += 1
            return False
        suppressed = int(entry[1]) if entry is not None else 0
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        if now - self._window_start >= self.window_s:
            self._window_start, self._lines = now, 0
        if self._lines >= self.max_lines_per_window:
            self._dropped += 1
            return False
        self._lines += 1
        more = (
            f" ({suppressed} more refusals of it not logged in the last {self.window_s:.0f} s)"
            if suppressed
            else ""
        )
        if self._dropped:
            more += f" ({self._dropped} refusals of other agents not logged: too many)"
            self._dropped = 0
        log.warning("refused agent %s: %s: %s%s", who, reason, detail, more)
        return True


class ClockOffsets:
    """Server id -> (offset in seconds, agent's clock minus ours; when it was seen)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._offsets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def note(self, server_id: str, offset_s: float, now: float | None = None) -> None:
        self._offsets[server_id] = (offset_s, time.time() if now is None else now)
        self._offsets.move_to_end(server_id)
        while len(self._offsets) > self.max_entries:
            self._offsets.popitem(last=False)

    def clear(self, server_id: str) -> None:
        self._offsets.pop(server_id, None)

    def offsets(self, now: float | None = None) -> dict[str, float]:
        """Offsets seen in the last day (older ones are forgotten)."""
        t = time.time() if now is None else now
        for sid in [s for s, (_, at) in self._offsets.items() if t - at > FORGET_OFFSET_AFTER_S]:
            del self._offsets[sid]
        return {sid: off for sid, (off, _) in self._offsets.items()}


REFUSALS: web.AppKey[RefusalLog] = web.AppKey("refusals", RefusalLog)
CLOCKS: web.AppKey[ClockOffsets] = web.AppKey("clock_offsets", ClockOffsets)


def setup(app: web.Application, window_s: float = 600.0) -> None:
    app[REFUSALS] = RefusalLog(window_s)
    app[CLOCKS] = ClockOffsets()


def refused(request: web.Request, who: str, reason: str, detail: str) -> None:
    """Log (rate-limited) that an agent was refused; ``who`` names the server if known."""
    refusals = request.app.get(REFUSALS)
    if refusals is not None:
        peer = request.remote or "?"
        refusals.note(f"{who} from {peer}", reason, detail)


def clock_offsets(app: web.Application) -> dict[str, float]:
    clocks = app.get(CLOCKS)
    return clocks.offsets() if clocks is not None else {}


def note_offset(app: web.Application, server_id: str, offset_s: float) -> None:
    clocks = app.get(CLOCKS)
    if clocks is not None:
        clocks.note(server_id, offset_s)


def clear_offset(app: web.Application, server_id: str) -> None:
    clocks = app.get(CLOCKS)
    if clocks is not None:
        clocks.clear(server_id)

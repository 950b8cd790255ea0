"""Slowing down credential guessing: a token bucket of tolerated failures per key.

Only failures spend from a bucket (a bad enrollment token, a session request that does
not verify, an unknown API key, a failed sign-in); successful requests never do, so a
busy fleet behind one address is never slowed by its own traffic. When a key's bucket
is empty, requests on the endpoints that count failures are answered 429 with
``Retry-After`` before their credential is even looked at, so a guesser learns nothing
more until the bucket refills.

Memory is bounded: at most ``max_tracked`` keys are remembered, the least recently
failed forgotten first (a forgotten key starts again with a full bucket). A full bucket
is the same as no entry, so keys are dropped once they have refilled.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Iterable

from aiohttp import web

from collector.config import RateLimitConfig


class _Bucket:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class FailureLimiter:
    """Per-key buckets of ``capacity`` failures refilled at ``capacity / window_s`` a second."""

    def __init__(self, capacity: int, window_s: float, max_tracked: int) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window_s
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        b = self._buckets.get(key)
        if b is None:
            return self.capacity
        level = min(self.capacity, b.level + (now - b.at) * self.rate)
        if level >= self.capacity:
            del self._buckets[key]
        return level

    def retry_after(self, key: str, now: float | None = None) -> float | None:
        """Seconds until ``key`` may fail again, or None if it may now."""
        now = time.monotonic() if now is None else now
        level = self._level(key, now)
        if level >= 1.0:
            return None
        return (1.0 - level) / self.rate

    def failed(self, key: str, now: float | None = None) -> None:
        """Spend one failure from ``key``'s bucket."""
        now = time.monotonic() if now is None else now
        level = self._level(key, now)
        self._buckets[key] = _Bucket(max(0.0, level - 1.0), now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_tracked:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class AuthLimits:
    """The collector's two limiters: by source address and by credential."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.by_address = FailureLimiter(
            config.address_failures, config.window_s, config.max_tracked
        )
        self.by_credential = FailureLimiter(
            config.credential_failures, config.window_s, config.max_tracked
        )

    def retry_after(self, address: str, credentials: Iterable[str] = ()) -> int | None:
        """Whole seconds to wait (for ``Retry-After``), or None when not limited."""
        waits = [self.by_address.retry_after(address)]
        waits += [self.by_credential.retry_after(c) for c in credentials]
        worst = max((w for w in waits if w is not None), default=None)
        return None if worst is None else max(1, math.ceil(worst))

    def failed(self, address: str, credentials: Iterable[str] = ()) -> None:
        self.by_address.failed(address)
        for c in credentials:
            self.by_credential.failed(c)


def source_of(request: web.Request) -> str:
    """The peer's address (the proxy's, behind one: its own limits then apply)."""
    return request.remote or "unknown"


def credential_key(kind: str, value: str) -> str:
    """A short, fixed-size key for a credential: no secret is kept in memory in clear."""
    return kind + ":" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]

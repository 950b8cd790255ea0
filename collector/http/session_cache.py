"""Agent sessions kept in memory for a few seconds (``[collector] session_cache_s``).

Every signed agent request names its session; looking the session up (the session row
joined with its server's, then its sealed key opened) was a point query per request.
What the lookup found is kept per session for ``session_cache_s`` seconds (5 by default;
0 looks it up on every request), so a burst of requests of one session (a spool drained
after an outage, a backup's chunks, a fleet reporting again after a restart) costs one
query. The staleness is bounded, and documented in ``docs/security.md``:

- a session's expiry is checked on every request against the time kept with it;
- a server revoked (``vigil-collector server revoke``, another process) or a session
  ended by another process's re-enrollment is refused within ``session_cache_s``;
- a re-enrollment through this process forgets its server's sessions at once.

Unknown sessions are not kept (each such request looks again). The cache holds at most
:data:`MAX_SESSIONS` sessions; past that the older half is dropped.
"""

from __future__ import annotations

import time
from typing import Any, Generic, NamedTuple, TypeVar

from aiohttp import web

V = TypeVar("V")

MAX_SESSIONS = 65536
"""Sessions kept at most (a few hundred bytes each)."""


class _Kept(NamedTuple, Generic[V]):
    server_id: str
    until: float
    value: V


class SessionCache(Generic[V]):
    """What a session's lookup found, per session id, for ``ttl_s`` seconds."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._kept: dict[str, _Kept[V]] = {}
        self._clock = clock

    def get(self, session_id: str) -> V | None:
        kept = self._kept.get(session_id)
        if kept is None:
            return None
        if kept.until <= self._clock():
            del self._kept[session_id]
            return None
        return kept.value

    def put(self, session_id: str, server_id: str, value: V, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._kept) >= MAX_SESSIONS:
            for old in list(self._kept)[: MAX_SESSIONS // 2]:
                del self._kept[old]
        self._kept.pop(session_id, None)
        self._kept[session_id] = _Kept(server_id, self._clock() + ttl_s, value)

    def forget_server(self, server_id: str) -> None:
        """Forget every session of ``server_id`` (its sessions were ended here)."""
        for sid in [s for s, k in self._kept.items() if k.server_id == server_id]:
            del self._kept[sid]

    def __len__(self) -> int:
        return len(self._kept)


SESSIONS: web.AppKey[SessionCache[Any]] = web.AppKey("agent_sessions", SessionCache)

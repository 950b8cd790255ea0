"""Refusing replayed requests: a request's nonce may be used once within the skew window.

The nonces are rows of ``request_nonces`` in the database, so a request accepted by one
collector process is refused by every other and after a restart (agent sessions outlive
both, see :mod:`collector.http.session_keys`). Taking a nonce is one insert that does
nothing when the nonce is there: the row count says new or replayed, on SQLite and on
PostgreSQL alike, and two processes racing with one nonce cannot both see it as new (the
primary key orders them). A request older than the window is refused by its timestamp
alone, so a round (``replay-prune``) forgets nonces past the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from collector.health.storage_health import writes_refused
from collector.http.appkeys import DB, NONCES
from collector.supervision import TASKS

log = logging.getLogger("vigil.collector")


def take(conn: Any, nonce: str, now: float) -> bool:
    """Record ``nonce``; True if it is new, False if it was seen already (a replay)."""
    return (
        conn.execute(
            "INSERT INTO request_nonces (nonce, seen_at) VALUES (?, ?) "
            "ON CONFLICT (nonce) DO NOTHING",
            (nonce, now),
        ).rowcount
        == 1
    )


def prune(conn: Any, before: float) -> int:
    """Forget the nonces first seen before ``before``; how many."""
    return conn.execute("DELETE FROM request_nonces WHERE seen_at < ?", (before,)).rowcount


class NonceStore:
    """The nonces seen in the last ``window_s`` seconds (twice the accepted clock skew),
    in the database of ``app``."""

    def __init__(self, app: web.Application, window_s: float) -> None:
        self._app = app
        self.window_s = window_s

    async def check_and_add(self, nonce: str) -> bool:
        """True if ``nonce`` is new (and remember it); False for a replay."""
        now = time.time()
        # Durable with the request's own writes (queued after it), not before them: a
        # second commit cycle per request would halve what the collector takes in.
        return await self._app[DB].write_unsettled(lambda c: take(c, nonce, now))

    async def prune(self) -> int:
        before = time.time() - self.window_s
        return await self._app[DB].write(lambda c: prune(c, before))


async def pruning(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the round that forgets nonces past the window."""
    store = app[NONCES]

    async def round() -> None:
        n = await store.prune()
        if n:
            log.debug("forgot %d request nonces past the replay window", n)

    handle = app[TASKS].every(
        "replay-prune",
        max(store.window_s / 4, 1.0),
        round,
        paused_when=lambda: writes_refused(app),
    )
    yield
    await handle.stop()

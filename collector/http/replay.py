"""Refusing replayed requests: a request's nonce may be used once within the skew window.

The nonces are rows of ``request_nonces`` in the database, so a request accepted by one
collector process is refused by every other and after a restart (agent sessions outlive
both, see :mod:`collector.http.session_keys`). Taking a nonce is one insert that does
nothing when the nonce is there: the row count says new or replayed, on SQLite and on
PostgreSQL alike, and two processes racing with one nonce cannot both see it as new (the
primary key orders them). A request older than the window is refused by its timestamp
alone, so a round (``replay-prune``) forgets nonces past the window.

A handler whose request ends in one write of its own (a report batch) takes the nonce in
that write (:func:`nonce_in_write`, :func:`write_with_nonce`): the insert runs first in the
write's job, a replay rolls the job back and is refused, and the request costs one commit,
not a claim's commit before its own. Whatever way such a handler ends without that write
(a refusal, an error, a cancelled request), the nonce is taken after it
(:func:`settle`), so a request answered once is a replay ever after, as before.

Report batches are written as a group (:class:`NonceGroup`, ``Database.write_grouped``):
the nonces of every batch in a commit are taken by one insert that returns those that
were new (``RETURNING``, on SQLite and PostgreSQL alike; a nonce another process holds
is not returned, and of two batches with one nonce in the same commit only the first
is new). A batch whose nonce was not new writes nothing and is refused as a replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web

from collector.health.storage_health import writes_refused
from collector.http.appkeys import DB, NONCES
from collector.supervision import TASKS

log = logging.getLogger("vigil.collector")

T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])

_IN_WRITE: set[Callable[..., Any]] = set()


class Replayed(Exception):
    """The request's nonce was taken already: nothing of the write is kept."""


class PendingNonce:
    """An authenticated request's nonce, to be taken by its handler's write."""

    __slots__ = ("nonce", "settled")

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.settled = False
        """The nonce is taken: by the handler's durable write, or found taken already."""


_PENDING = web.RequestKey("vigil.pending_nonce", PendingNonce)


def nonce_in_write(handler: H) -> H:
    """Mark a handler that takes its request's nonce in its own write (:func:`write_with_nonce`)."""
    _IN_WRITE.add(handler)
    return handler


def takes_nonce_in_write(request: web.Request) -> bool:
    """Does the handler of ``request`` take the nonce in its own write?"""
    return request.match_info.handler in _IN_WRITE


def defer(request: web.Request, nonce: str) -> None:
    """Leave ``nonce`` to the handler's write (the handler is :func:`nonce_in_write`)."""
    request[_PENDING] = PendingNonce(nonce)


async def write_with_nonce(request: web.Request, fn: Callable[[Any], T]) -> T:
    """Run ``fn`` as the request's write (``Database.write``: back once durable), taking
    its deferred nonce first in the same job: :class:`Replayed` (the job rolled back)
    when it was taken already. A request without a deferred nonce just writes ``fn``.

    The nonce counts as settled only once the write is durable or found it a replay; a
    write that failed (the job's error, a failed commit) leaves it to :func:`settle`."""
    pending = request.get(_PENDING)
    db = request.app[DB]
    if pending is None:
        return await db.write(fn)
    nonce = pending.nonce

    def job(conn: Any) -> T:
        if not take(conn, nonce, time.time()):
            raise Replayed(nonce)
        return fn(conn)

    try:
        result = await db.write(job)
    except Replayed:
        pending.settled = True
        raise
    pending.settled = True
    return result


async def settle(request: web.Request) -> bool:
    """Take the deferred nonce of a request whose handler ended without its write;
    True if the nonce was new (or had been taken by that write), False for a replay."""
    pending = request.get(_PENDING)
    if pending is None or pending.settled:
        return True
    pending.settled = True
    return await request.app[NONCES].check_and_add(pending.nonce)


async def write_grouped_with_nonce(request: web.Request, group: NonceGroup, item: Any) -> Any:
    """:func:`write_with_nonce` for an item of ``group`` (written together with the other
    requests' items queued for the same commit)."""
    pending = request.get(_PENDING)
    nonce = None if pending is None else pending.nonce
    try:
        result = await request.app[DB].write_grouped(group, (nonce, item))
    except Replayed:
        if pending is not None:
            pending.settled = True
        raise
    if pending is not None:
        pending.settled = True
    return result


class NonceGroup:
    """A write group (``Database.write_grouped``) whose items each take a request's nonce
    first: items ``(nonce or None, inner item)``; the items whose nonce was new (or that
    have none) go on to ``inner``, the others come back :class:`Replayed`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def run(self, conn: Any, items: list[tuple[str | None, Any]]) -> list[tuple[bool, Any]]:
        new = take_many(conn, [n for n, _ in items if n is not None], time.time())
        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(items)
        going: list[int] = []
        for i, (nonce, _) in enumerate(items):
            if nonce is not None:
                if nonce not in new:
                    outcomes[i] = (False, Replayed(nonce))
                    continue
                new.discard(nonce)  # the same nonce again in this commit: a replay
            going.append(i)
        done = self.inner.run(conn, [items[i][1] for i in going]) if going else []
        for i, outcome in zip(going, done, strict=True):
            outcomes[i] = outcome
        return outcomes


_TAKE_CHUNK = 200
"""Nonces per insert statement (two parameters each, far below SQLite's limit)."""


def take_many(conn: Any, nonces: list[str], now: float) -> set[str]:
    """Record ``nonces``; the set of those that were new (a nonce seen already, here or
    by another process, is not in it)."""
    new: set[str] = set()
    for start in range(0, len(nonces), _TAKE_CHUNK):
        chunk = nonces[start : start + _TAKE_CHUNK]
        rows = ", ".join("(?, ?)" for _ in chunk)
        params = [p for nonce in chunk for p in (nonce, now)]
        cur = conn.execute(
            f"INSERT INTO request_nonces (nonce, seen_at) VALUES {rows} "
            "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
            params,
        )
        new.update(r[0] for r in cur.fetchall())
    return new


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

"""How much a client may send and how slowly: body caps and read deadlines.

aiohttp buffers a body up to ``client_max_size`` and waits for it as long as the client
likes. Without more, sixty clients that each announce a large body and send it a byte a
second hold sixty connections and up to sixty buffers open for good. So, before any
handler or authentication runs:

- the routes anyone may call (enrollment, session, the pages' sign-in) accept a small
  body only: a larger ``Content-Length`` is refused with 413 before a byte of it is read,
  and a chunked body is cut at the same size;
- every body must arrive by a deadline: ``read_timeout_s`` plus its length at
  ``min_body_bytes_per_s`` (a rate, so an 8 MiB backup chunk on a slow line still
  arrives, while a 2 KB body sent a byte a second does not). Past the deadline the
  client gets 408 and the connection is closed;
- headers must arrive within ``read_timeout_s`` too: the server's keep-alive timer,
  which aiohttp starts when a connection opens and stops once a request is complete,
  is set to it (``collector.server``).

Authenticated agent routes read their body only after the session is checked
(``collector.http.auth``), so an unauthenticated client never makes the collector buffer
more than the small cap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar
from urllib.parse import unquote_to_bytes

from aiohttp import web

from collector.http import paths
from collector.http.appkeys import CONFIG
from collector.http.errors import ApiError
from protocol import limits, routes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

log = logging.getLogger("vigil.collector")

OPEN_BODY_PATHS = frozenset({routes.ENROLL, routes.SESSION, paths.LOGIN})
"""Routes that read a body before anyone is authenticated."""

MAX_OPEN_BODY = limits.MAX_ENROLL_BYTES
"""The most an unauthenticated client may send (an enrollment request is about 1.5 KB)."""


class BodyTooSlow(TimeoutError):
    """The body did not arrive by its deadline; the error middleware answers 408."""


def body_deadline_s(length: int | None, cap: int, read_timeout_s: float, min_rate: int) -> float:
    """Seconds a body of ``length`` bytes (``cap`` if unknown) may take to arrive."""
    size = cap if length is None else min(length, cap)
    return read_timeout_s + size / min_rate


def _cut_off(request: web.Request) -> None:
    payload = request.content
    if payload.is_eof():
        return
    log.info(
        "cut off %s %s from %s: body not received in time",
        request.method,
        request.path,
        request.remote,
    )
    payload.set_exception(BodyTooSlow("request body not received in time"))


def undecodable_part(request: web.Request) -> str | None:
    """What part of the request is not valid UTF-8 (a header, the path, the query), if any.

    aiohttp decodes headers leniently (undecodable bytes become lone surrogates) and the
    path's percent-escapes likewise; a string like that fails later, wherever it is
    hashed, stored or compared. Refusing it here gives one clear 400 instead.
    """
    for name, value in request.raw_headers:
        if value.isascii():  # nearly every header: no decoding needed to know
            continue
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return f"header {name.decode('latin-1')}"
    raw = request.raw_path
    if raw.isascii() and "%" not in raw:
        return None
    path, _, query = raw.partition("?")
    for part, text in (("path", path), ("query string", query.replace("+", " "))):
        try:
            unquote_to_bytes(text).decode("utf-8")
        except UnicodeError:
            return part
    return None


def refuse_undecodable_or_larger(request: web.Request, cap: int) -> None:
    """400 for text that is not UTF-8, 413 for a declared body over ``cap`` (unread)."""
    bad = undecodable_part(request)
    if bad is not None:
        raise ApiError(400, "invalid_encoding", f"the {bad} is not valid UTF-8", field=bad)
    length = request.content_length
    if length is not None and length > cap:
        raise ApiError(413, "too_large", f"body of {length} bytes exceeds the limit of {cap}")


async def read_in_time(request: web.Request, read: Callable[[], Awaitable[T]]) -> T:
    """``read()`` the body, cut off (:class:`BodyTooSlow`) past its deadline. A body that
    arrived whole with the headers (a report, nearly always) needs no timer."""
    if request.content.is_eof():
        return await read()
    return await _within_deadline(request, request.client_max_size, read)


async def _within_deadline(request: web.Request, cap: int, run: Callable[[], Awaitable[T]]) -> T:
    """``run()`` with the request's body cut off (:class:`BodyTooSlow`) past its deadline."""
    cfg = request.app[CONFIG]
    deadline = body_deadline_s(
        request.content_length, cap, cfg.read_timeout_s, cfg.min_body_bytes_per_s
    )
    timer = asyncio.get_running_loop().call_later(deadline, _cut_off, request)
    try:
        return await run()
    finally:
        timer.cancel()


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse undecodable text and oversized bodies up front, cap unauthenticated bodies,
    time every body (an agent's signed request passes the same checks in
    :mod:`collector.http.front_door`, its body timed where it is read)."""
    cap = MAX_OPEN_BODY if request.path in OPEN_BODY_PATHS else request.client_max_size
    refuse_undecodable_or_larger(request, cap)
    if cap != request.client_max_size:
        request = request.clone(client_max_size=cap)
    if not request.body_exists or request.content.is_eof():
        return await handler(request)
    return await _within_deadline(request, cap, partial(handler, request))

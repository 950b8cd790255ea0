"""The one middleware between the error handling and every handler: what a request must
pass before its handler runs.

An agent's signed request (every ``/api/v1/agent/…`` path but enrollment and opening a
session) is nearly all a collector receives, a health report a minute from every server.
One test of its path sends it down one path with everything it needs, in order: text
that is UTF-8 and a body within aiohttp's cap (:mod:`collector.http.request_limits`),
the storage checks if it writes (:mod:`collector.health.storage_health`), then the
session, signature and nonce (:mod:`collector.http.auth`), its body read under the slow
body's deadline only when it did not arrive whole with the headers. Every other request
(the pages, the partners' API, enrollment, ``/metrics``) passes the same checks as before,
one step after the other: the limits, the storage checks, the authentication.

Three middlewares per agent request cost three coroutines and aiohttp's wrapping of each,
the body's deadline a timer created and cancelled per request; the steady report's CPU
before and after is in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from collector.health.storage_health import storage_middleware, storage_refusal
from collector.http.auth import Handler, agent_request, auth_middleware, is_signed_agent_path
from collector.http.request_limits import limits_middleware, refuse_undecodable_or_larger


@web.middleware
async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_signed_agent_path(request.path):
        refuse_undecodable_or_larger(request, request.client_max_size)
        refused = storage_refusal(request)
        if refused is not None:
            return refused
        return await agent_request(request, handler)
    checked = partial(storage_middleware, handler=partial(auth_middleware, handler=handler))
    return await limits_middleware(request, checked)

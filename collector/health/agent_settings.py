"""What the collector tells each agent to do (``AgentSettings``), built from every feature.

Features that add settings (backups, contracts) register a provider: an async function
``(app, server_id) -> dict`` of ``AgentSettings`` fields. Results are cached a few seconds
per server so a busy ingest does not recompute them for every report.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from collector.health import servers
from collector.http.appkeys import CONFIG, DB
from protocol.messages import AgentSettings

Provider = Callable[[web.Application, str], Awaitable[dict[str, Any]]]

PROVIDERS: web.AppKey[list[Provider]] = web.AppKey("settings_providers", list)
_CACHE: web.AppKey[dict[str, tuple[float, AgentSettings]]] = web.AppKey("settings_cache", dict)

CACHE_S = 5.0


async def _core(app: web.Application, server_id: str) -> dict[str, Any]:
    default = app[CONFIG].report_interval_s

    def q(conn: Any) -> int:
        row = servers.get(conn, server_id)
        return default if row is None else servers.effective_report_interval(conn, row, default)

    # Two point lookups by key: on the loop, as authentication's are (a thread hop would
    # cost more than they do, and an agent reporting every minute misses the cache).
    interval = app[DB].read_now(q)
    return {
        "report_interval_s": interval,
        "probe_interval_s": interval,
        "max_clock_skew_s": app[CONFIG].max_clock_skew_s,
    }


async def settings_for(
    app: web.Application, server_id: str, *, fresh: bool = False
) -> AgentSettings:
    cache = app[_CACHE]
    hit = cache.get(server_id)
    now = time.monotonic()
    if hit is not None and not fresh and now - hit[0] < CACHE_S:
        return hit[1]
    fields: dict[str, Any] = await _core(app, server_id)
    for provider in app[PROVIDERS]:
        fields.update(await provider(app, server_id))
    settings = msgspec.convert(fields, AgentSettings)
    cache[server_id] = (now, settings)
    return settings


def init(app: web.Application) -> None:
    app[PROVIDERS] = []
    app[_CACHE] = {}

"""Health monitoring as one feature of the collector's app: enrollment, report ingest and the
partner API's server routes, the registries other features add to (agent settings providers),
the refused-request log and the housekeeping that prunes old history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from collector.health import agent_settings, api, enrollment, fleet_cache, ingest, refusals
from collector.health.storage_health import writes_refused
from collector.http.appkeys import CONFIG, DB
from collector.supervision import TASKS

log = logging.getLogger("vigil.collector")


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    async def prune() -> None:
        cutoff = time.time() - app[CONFIG].history_days * 86400
        n = await app[DB].write(lambda c: ingest.prune_history(c, cutoff))
        if n:
            log.info("pruned %d history rows older than %d days", n, app[CONFIG].history_days)

    handle = app[TASKS].every(
        "housekeeping",
        app[CONFIG].housekeeping_interval_s,
        prune,
        paused_when=lambda: writes_refused(app),
    )
    yield
    await handle.stop()


def setup(app: web.Application) -> None:
    """Registries, housekeeping and routes; runs first, so later features find the
    settings-provider registry in place."""
    refusals.setup(app, app[CONFIG].refusal_log_interval_s)
    agent_settings.init(app)
    fleet_cache.setup(app)
    app.cleanup_ctx.append(_housekeeping)
    for module in (enrollment, ingest, api):
        module.setup_routes(app)

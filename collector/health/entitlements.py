"""What a server's contract entitles it to, where ingest and agent settings need it.

The contract engine answers (``collector.contracts.service.entitlement``); this module
caches the answers per server for a minute (every report's acknowledgement carries
them) and turns them into ``AgentSettings`` fields and plain words for the installer.
A partner with no contracts on record is not checked: everything is offered.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from collector.backups.entitlement import ENTITLEMENT_CHECK, Entitlement, backup_entitled
from collector.contracts.service import EntitlementAnswer, EntitlementCache
from collector.contracts.service import backup_entitlement as contract_backup_entitlement
from collector.http.appkeys import DB

CACHE: web.AppKey[EntitlementCache] = web.AppKey("entitlement_cache", EntitlementCache)

MONITORING = "health_monitoring"
BACKUP = "online_backup"


def answer(app: web.Application, server_id: str, what: str) -> EntitlementAnswer:
    """Cached; a miss costs a few point queries on the caller's thread."""
    cache = app[CACHE]
    return app[DB].read_now(lambda c: cache.get(c, server_id, what))


async def settings_provider(app: web.Application, server_id: str) -> dict[str, Any]:
    monitoring = answer(app, server_id, MONITORING)
    backup = answer(app, server_id, BACKUP)
    notes = []
    if not monitoring.entitled:
        notes.append(f"Health monitoring is not offered: {monitoring.reason}.")
    if not backup.entitled:
        notes.append(f"Online backup is not offered: {backup.reason}.")
    return {"monitoring_entitled": monitoring.entitled, "notice": " ".join(notes)}


async def backup_check(db: Any, server_id: str) -> Entitlement:
    """Online backup needs both: the backup policy switched on (interval > 0) and a
    contract that includes it. The first refusal names its reason."""
    policy = await backup_entitled(db, server_id)
    if not policy.entitled:
        return policy
    return await contract_backup_entitlement(db, server_id)


def setup(app: web.Application) -> None:
    """Cache, settings provider and the backup upload's entitlement check."""
    from collector.health.agent_settings import PROVIDERS

    app[CACHE] = EntitlementCache(ttl=60.0)
    app[PROVIDERS].append(settings_provider)
    app[ENTITLEMENT_CHECK] = backup_check

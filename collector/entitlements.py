"""What a server is entitled to: the one module that answers it for the whole collector.

Online backup needs two things: the backup policy switched on (the effective interval,
server override else partner default, is not 0) and a contract that includes it. The
contract engine answers the second (``collector.contracts.service.entitlement``); this
module caches its answers per server for a minute (``[contracts] entitlement_cache_s``;
every report's acknowledgement carries them) and turns them into ``AgentSettings`` fields
and plain words for the installer.
A partner with no contracts on record is not checked: everything is offered.

The upload handlers call whatever ``app[ENTITLEMENT_CHECK]`` holds: the policy alone
(:func:`backup_entitled`) unless :func:`setup` points it at both (:func:`backup_check`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from collector.backups import catalog
from collector.contracts.service import EntitlementAnswer, EntitlementCache
from collector.contracts.service import backup_entitlement as contract_backup_entitlement
from collector.health import servers
from collector.http.appkeys import CONFIG, DB


@dataclass(frozen=True)
class Entitlement:
    entitled: bool
    reason: str = ""
    """Plain words for the installer when not entitled (the agent shows it in its status)."""


EntitlementCheck = Callable[[Any, str], Awaitable[Entitlement]]
"""``async def check(db, server_id) -> Entitlement``."""


def decide_entitlement(conn: Any, server_id: str) -> Entitlement:
    srv = servers.brief(conn, server_id)
    if srv is None:
        return Entitlement(False, "server is not enrolled")
    if srv["revoked_at"] is not None:
        return Entitlement(False, "server's enrollment was revoked")
    server_policy = catalog.get_policy(conn, "server", server_id)
    if server_policy is not None and server_policy.interval_s == 0:
        return Entitlement(False, "online backup is switched off for this server (interval 0)")
    partner_policy = catalog.get_policy(conn, "partner", str(srv["partner_id"]))
    if (
        (server_policy is None or server_policy.interval_s is None)
        and partner_policy is not None
        and partner_policy.interval_s == 0
    ):
        return Entitlement(
            False, "online backup is switched off for this partner's servers (interval 0)"
        )
    return Entitlement(True)


async def backup_entitled(db: Any, server_id: str) -> Entitlement:
    """Default check: the policy's interval is not 0."""
    return await db.read(lambda conn: decide_entitlement(conn, server_id))


ENTITLEMENT_CHECK: web.AppKey[EntitlementCheck] = web.AppKey("backup_entitlement")

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

    app[CACHE] = EntitlementCache(ttl=app[CONFIG].contracts.entitlement_cache_s)
    app[PROVIDERS].append(settings_provider)
    app[ENTITLEMENT_CHECK] = backup_check

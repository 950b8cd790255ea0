"""Is a server entitled to online backup? A hook the contract engine can replace.

The default answer comes from the backup policy alone: entitled unless the effective
backup interval (server override, else partner default) is 0. The lead points
``app[ENTITLEMENT_CHECK]`` at the contract engine (for instance "online backup is part of
Maintenance & Support, not of the warranty"); the upload handlers call whatever is there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from collector.backups import catalog


@dataclass(frozen=True)
class Entitlement:
    entitled: bool
    reason: str = ""
    """Plain words for the installer when not entitled (the agent shows it in its status)."""


EntitlementCheck = Callable[[Any, str], Awaitable[Entitlement]]
"""``async def check(db, server_id) -> Entitlement``."""


def decide_entitlement(conn: Any, server_id: str) -> Entitlement:
    srv = catalog.get_server(conn, server_id)
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


ENTITLEMENT_CHECK: web.AppKey[EntitlementCheck] = web.AppKey("backup_entitlement", EntitlementCheck)

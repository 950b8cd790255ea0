"""What the collector tells an agent about backups (merged into ``AgentSettings``)."""

from __future__ import annotations

from typing import Any

from collector.backups import catalog
from collector.backups.promise import effective_for_server
from collector.entitlements import decide_entitlement
from collector.health import servers


def backup_settings_for(conn: Any, server_id: str) -> dict[str, Any]:
    """Synchronous form, for callers already inside a ``Database.read``."""
    srv = servers.brief(conn, server_id)
    if srv is None:
        return {
            "backup_interval_s": 0,
            "backup_window": "",
            "backup_recipients": [],
            "backup_recipient_list": "",
            "backup_entitled": False,
        }
    partner_id = int(srv["partner_id"])
    policy = effective_for_server(conn, server_id, partner_id).policy
    recipients = [r["recipient"] for r in catalog.list_recipients(conn, partner_id)]
    signed = catalog.get_recipient_list(conn, partner_id)
    return {
        "backup_interval_s": int(policy.interval_s or 0),
        "backup_window": policy.window or "",
        "backup_recipients": recipients,
        "backup_recipient_list": signed["signed"] if signed else "",
        "backup_entitled": decide_entitlement(conn, server_id).entitled,
    }


async def agent_backup_settings(db: Any, server_id: str) -> dict[str, Any]:
    """``backup_interval_s``, ``backup_window``, ``backup_recipients`` (the partner's
    recovery keys and extra recipients, public ``age1…`` only), ``backup_recipient_list``
    (the partner's signed list, forwarded as given) and ``backup_entitled``
    (the default, policy-based answer; the contract engine may further refuse) — keys
    named as the fields of ``protocol.messages.AgentSettings``."""
    return await db.read(lambda conn: backup_settings_for(conn, server_id))

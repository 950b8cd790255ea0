"""What each role may do, decided in one place for the API and the pages alike.

A request is first classified by what it does (read, act on an incident, accept or reopen
one, administer) from its method and path; the role must reach that level. Customer users
are further held to a short list of paths (their servers, cameras, backup status and
incidents, and accepting or reopening those): everything else is the partner's business.
The vendor organisation's users read every partner's fleet, servers, incidents and
contracts and change nothing of a partner's (their admin manages their own users).
Which *objects* a user sees (its partner's, its customer's) is checked by each handler;
this module only decides whether the kind of request is allowed at all.
"""

from __future__ import annotations

import re

from collector.http import paths

RANK = {"viewer": 0, "operator": 1, "admin": 2}

READ, OPERATE, ADMIN = "viewer", "operator", "admin"

_SERVER = r"/api/v1/servers/[^/]+"
_CUSTOMER_READS = re.compile(
    r"^(/api/v1/servers|" + _SERVER + r"(/cameras|/camera-events|/storage-history|"
    r"/backup-status|/backups)?|/api/v1/incidents(/[^/]+)?|/api/v1/me)$"
)
_CUSTOMER_ACTIONS = re.compile(r"^/api/v1/incidents/[^/]+/(accept|reopen)$")
_OPERATOR_ACTIONS = re.compile(r"^/api/v1/incidents(/[^/]+/[a-z_]+)?$")
_SILENCES = re.compile(
    r"^(/api/v1/notify/silences(/\d+)?|/settings/notifications/silences(/\d+/end)?"
    r"|/servers/[^/]+/silence)$"
)
"""Maintenance windows: an operator's job (channels and routes are the admin's)."""
_OWN_KEYS = re.compile(r"^/api/v1/api-keys(/\d+)?$")
_PAGE_CUSTOMER = re.compile(r"^/(|servers/[^/]+|incidents)$")
_PAGE_CUSTOMER_ACTIONS = re.compile(r"^/incidents/[^/]+/(accept|reopen)$")
_PAGE_OPERATOR = re.compile(r"^/incidents/[^/]+/[a-z_]+$")
_PAGE_OWN_KEYS = re.compile(r"^/settings(/api-keys(/\d+/revoke)?)?$")
_VENDOR_READS = re.compile(
    r"^(/api/v1/servers|" + _SERVER + r"(/cameras|/camera-events|/storage-history|"
    r"/backup-status|/backups)?|/api/v1/incidents|/api/v1/me|/api/v1/users|/api/v1/api-keys"
    r"|/api/v1/reports/monthly(\.pdf)?|/|/servers/[^/]+|/incidents|/contracts"
    r"|/contracts/report(\.csv|\.pdf)?|/settings)$"
)
"""What the vendor organisation's users read: every partner's fleet, servers, incidents
and contracts, and their own organisation's users and keys."""
_VENDOR_ADMIN = re.compile(r"^(/api/v1/users(/\d+/[a-z_]+)?|/settings/users(/\d+/[a-z_]+)?)$")
"""The vendor's admin manages the vendor's own users (never a partner's)."""


def needed(method: str, path: str) -> str:
    """The least role a request needs, whoever's objects it names."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return READ
    if _OPERATOR_ACTIONS.match(path) or _PAGE_OPERATOR.match(path) or _SILENCES.match(path):
        return OPERATE
    if _OWN_KEYS.match(path) or _PAGE_OWN_KEYS.match(path) or path == "/logout":
        return READ  # everyone signs out and manages its own API keys (others': admin)
    return ADMIN


def allowed(role: str, customer: bool, method: str, path: str, *, vendor: bool = False) -> bool:
    """May a user with ``role`` (a customer's user when ``customer``, the vendor
    organisation's when ``vendor``) make this request?"""
    if vendor and not customer:
        if method in ("GET", "HEAD"):
            return bool(_VENDOR_READS.match(path))
        if path == "/logout" or _OWN_KEYS.match(path) or _PAGE_OWN_KEYS.match(path):
            return True
        return role == ADMIN and bool(_VENDOR_ADMIN.match(path))
    if customer:
        reading = method in ("GET", "HEAD")
        if path.startswith(paths.API_PREFIX):
            if reading:
                return bool(_CUSTOMER_READS.match(path))
            return bool(_CUSTOMER_ACTIONS.match(path)) and RANK.get(role, -1) >= 1
        if reading:
            return bool(_PAGE_CUSTOMER.match(path)) or path == "/settings"
        if _PAGE_CUSTOMER_ACTIONS.match(path):
            return RANK.get(role, -1) >= 1
        return path in ("/logout",) or bool(_PAGE_OWN_KEYS.match(path))
    return RANK.get(role, -1) >= RANK[needed(method, path)]

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
from protocol import routes

RANK = {"viewer": 0, "operator": 1, "admin": 2}

READ, OPERATE, ADMIN = "viewer", "operator", "admin"

_PART = re.compile(r"\{(\w+)\}")
_PART_SYNTAX = {"key_id": r"\d+", "silence_id": r"\d+", "user_id": r"\d+", "action": "[a-z_]+"}
"""The parts a handler reads as a number or an action word; any other part as aiohttp
matches it."""


def _paths(*patterns: str, **choices: str) -> re.Pattern[str]:
    """One regular expression matching any of the route ``patterns`` (their ``{name}``
    parts as aiohttp matches them; ``choices`` narrows a part to alternatives, e.g.
    ``action="accept|reopen"``): the paths are spelled once, in the route modules."""

    def one(pattern: str) -> str:
        out, at = [], 0
        for m in _PART.finditer(pattern):
            out.append(re.escape(pattern[at : m.start()]))
            name = m.group(1)
            out.append(f"(?:{choices.get(name) or _PART_SYNTAX.get(name, '[^{}/]+')})")
            at = m.end()
        return "".join([*out, re.escape(pattern[at:])])

    return re.compile("^(?:" + "|".join(one(p) for p in patterns) + ")$")


_SERVER_READS = (
    paths.SERVERS,
    paths.SERVER,
    paths.SERVER_CAMERAS,
    paths.SERVER_CAMERA_EVENTS,
    paths.SERVER_STORAGE_HISTORY,
    routes.SERVER_BACKUP_STATUS,
    routes.SERVER_BACKUPS,
)
"""A server's fleet entry, cameras, storage and backup list (never a backup's contents)."""
_CUSTOMER_READS = _paths(*_SERVER_READS, paths.INCIDENTS, paths.INCIDENT, paths.ME)
_CUSTOMER_ACTIONS = _paths(paths.INCIDENT_ACTION, action="accept|reopen")
_OPERATOR_ACTIONS = _paths(paths.INCIDENTS, paths.INCIDENT_ACTION)
_SILENCES = _paths(
    paths.NOTIFY_SILENCES,
    paths.NOTIFY_SILENCE,
    paths.NOTIFY_PAGE_SILENCES,
    paths.NOTIFY_PAGE_SILENCE_END,
    paths.SERVER_PAGE_SILENCE,
)
"""Maintenance windows: an operator's job (channels and routes are the admin's)."""
_OWN_KEYS = _paths(paths.API_KEYS, paths.API_KEY)
_PAGE_CUSTOMER = _paths(paths.FLEET_PAGE, paths.SERVER_PAGE, paths.INCIDENTS_PAGE)
_PAGE_CUSTOMER_ACTIONS = _paths(paths.INCIDENT_FORM, action="accept|reopen")
_PAGE_OPERATOR = _paths(paths.INCIDENT_FORM)
_PAGE_OWN_KEYS = _paths(paths.SETTINGS_PAGE, paths.SETTINGS_API_KEYS, paths.SETTINGS_API_KEY_REVOKE)
_VENDOR_READS = _paths(
    *_SERVER_READS,
    paths.INCIDENTS,
    paths.ME,
    paths.USERS,
    paths.API_KEYS,
    paths.MONTHLY_REPORT,
    paths.MONTHLY_REPORT_PDF,
    paths.FLEET_PAGE,
    paths.SERVER_PAGE,
    paths.INCIDENTS_PAGE,
    paths.CONTRACTS_PAGE,
    paths.CONTRACTS_REPORT_PAGE,
    paths.CONTRACTS_REPORT_CSV,
    paths.CONTRACTS_REPORT_PDF,
    paths.SETTINGS_PAGE,
)
"""What the vendor organisation's users read: every partner's fleet, servers, incidents
and contracts, and their own organisation's users and keys."""
_VENDOR_ADMIN = _paths(
    paths.USERS, paths.USER_ACTION, paths.SETTINGS_USERS, paths.SETTINGS_USER_ACTION
)
"""The vendor's admin manages the vendor's own users (never a partner's)."""


def needed(method: str, path: str) -> str:
    """The least role a request needs, whoever's objects it names."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return READ
    if _OPERATOR_ACTIONS.match(path) or _PAGE_OPERATOR.match(path) or _SILENCES.match(path):
        return OPERATE
    if _OWN_KEYS.match(path) or _PAGE_OWN_KEYS.match(path) or path == paths.LOGOUT:
        return READ  # everyone signs out and manages its own API keys (others': admin)
    return ADMIN


def allowed(role: str, customer: bool, method: str, path: str, *, vendor: bool = False) -> bool:
    """May a user with ``role`` (a customer's user when ``customer``, the vendor
    organisation's when ``vendor``) make this request?"""
    if vendor and not customer:
        if method in ("GET", "HEAD"):
            return bool(_VENDOR_READS.match(path))
        if path == paths.LOGOUT or _OWN_KEYS.match(path) or _PAGE_OWN_KEYS.match(path):
            return True
        return role == ADMIN and bool(_VENDOR_ADMIN.match(path))
    if customer:
        reading = method in ("GET", "HEAD")
        if path.startswith(paths.API_PREFIX):
            if reading:
                return bool(_CUSTOMER_READS.match(path))
            return bool(_CUSTOMER_ACTIONS.match(path)) and RANK.get(role, -1) >= 1
        if reading:
            return bool(_PAGE_CUSTOMER.match(path)) or path == paths.SETTINGS_PAGE
        if _PAGE_CUSTOMER_ACTIONS.match(path):
            return RANK.get(role, -1) >= 1
        return path == paths.LOGOUT or bool(_PAGE_OWN_KEYS.match(path))
    return RANK.get(role, -1) >= RANK[needed(method, path)]

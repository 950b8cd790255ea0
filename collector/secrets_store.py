"""Enrollment tokens and partner API keys as the CLI and enrollment use them: made,
consumed and revoked here, stored (only as hashes) by :mod:`collector.accounts.store`.

Each is 192 bits or more from :mod:`secrets`, so a plain SHA-256 is enough: nothing in
the database can be turned back into a credential that the collector accepts
(:mod:`collector.accounts.credentials`, whose names this module also gives its callers).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass

from collector.accounts import store
from collector.accounts.credentials import APIKEY_PREFIX, TOKEN_PREFIX, digest
from collector.accounts.partners import (  # the partners table; named here for older callers
    NotFound,
    Partner,
    add_partner,
    list_partners,
    partner_by_id,
    partner_by_name,
)

__all__ = [
    "APIKEY_PREFIX",
    "NotFound",
    "Partner",
    "add_partner",
    "digest",
    "list_partners",
    "partner_by_name",
]


def create_token(
    conn: sqlite3.Connection,
    partner_id: int,
    uses: int,
    ttl_s: float,
    *,
    allow_reenroll: bool = False,
) -> str:
    """A new enrollment token; ``allow_reenroll`` lets it re-key machines already enrolled."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    now = time.time()
    store.insert_token(conn, partner_id, digest(token), uses, now + ttl_s, now, allow_reenroll)
    return token


@dataclass(frozen=True)
class TokenGrant:
    """What a consumed enrollment token allows."""

    partner_id: int
    allow_reenroll: bool


class TokenRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def consume_token(conn: sqlite3.Connection, token: str, now: float) -> TokenGrant:
    """Use one of the token's uses (inside the caller's write); return what it grants."""
    row = store.token_by_hash(conn, digest(token))
    if row is None:
        raise TokenRefused("unknown enrollment token")
    if row["revoked_at"] is not None:
        raise TokenRefused("enrollment token was revoked")
    if row["expires_at"] <= now:
        raise TokenRefused("enrollment token has expired")
    if row["uses_left"] <= 0:
        raise TokenRefused("enrollment token has no uses left")
    store.use_token(conn, int(row["id"]))
    return TokenGrant(int(row["partner_id"]), bool(row["allow_reenroll"]))


def create_api_key(conn: sqlite3.Connection, partner_id: int) -> str:
    """A key of the partner's service account (full rights over the partner's data)."""
    user = store.get_user(conn, partner_id, store.service_account(conn, partner_id))
    assert user is not None
    return store.create_key(conn, user)


def partner_for_api_key(conn: sqlite3.Connection, key: str) -> Partner | None:
    partner_id = store.partner_id_of_key(conn, digest(key))
    return None if partner_id is None else partner_by_id(conn, partner_id)


def revoke_api_key(conn: sqlite3.Connection, prefix: str) -> int:
    return store.revoke_keys_with_prefix(conn, prefix, time.time())

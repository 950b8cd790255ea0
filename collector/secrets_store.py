"""Enrollment tokens, partner API keys and browser sign-ins: stored only as hashes.

Each is 192 bits or more from :mod:`secrets`, so a plain SHA-256 is enough: nothing in
the database can be turned back into a credential that the collector accepts.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from collector.accounts.partners import (  # the partners table; named here for older callers
    NotFound,
    Partner,
    add_partner,
    list_partners,
    partner_by_id,
    partner_by_name,
)

__all__ = ["NotFound", "Partner", "add_partner", "list_partners", "partner_by_name"]

TOKEN_PREFIX = "vgl_enr_"
APIKEY_PREFIX = "vgl_key_"
PAGE_SESSION_PREFIX = "vgl_web_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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
    conn.execute(
        "INSERT INTO enrollment_tokens (partner_id, token_hash, uses_left, expires_at, "
        "created_at, allow_reenroll) VALUES (?, ?, ?, ?, ?, ?)",
        (partner_id, digest(token), uses, now + ttl_s, now, int(allow_reenroll)),
    )
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
    row = conn.execute(
        "SELECT id, partner_id, uses_left, expires_at, revoked_at, allow_reenroll "
        "FROM enrollment_tokens "
        "WHERE token_hash = ?",
        (digest(token),),
    ).fetchone()
    if row is None:
        raise TokenRefused("unknown enrollment token")
    if row["revoked_at"] is not None:
        raise TokenRefused("enrollment token was revoked")
    if row["expires_at"] <= now:
        raise TokenRefused("enrollment token has expired")
    if row["uses_left"] <= 0:
        raise TokenRefused("enrollment token has no uses left")
    conn.execute(
        "UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE id = ?", (row["id"],)
    )
    return TokenGrant(int(row["partner_id"]), bool(row["allow_reenroll"]))


def create_api_key(conn: sqlite3.Connection, partner_id: int) -> str:
    """A key of the partner's service account (full rights over the partner's data)."""
    from collector.accounts import store

    user = store.get_user(conn, partner_id, store.service_account(conn, partner_id))
    assert user is not None
    return store.create_key(conn, user)


def partner_for_api_key(conn: sqlite3.Connection, key: str) -> Partner | None:
    row = conn.execute(
        "SELECT partner_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        (digest(key),),
    ).fetchone()
    return None if row is None else partner_by_id(conn, row[0])


def revoke_api_key(conn: sqlite3.Connection, prefix: str) -> int:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
        (time.time(), prefix),
    )
    return cur.rowcount


# --- browser sign-ins ----------------------------------------------------------------------


def csrf_for(session_id: str) -> str:
    """The CSRF token of a sign-in: a hash of its secret cookie, so only its holder has it."""
    return hashlib.sha256(b"vigil-csrf-v1\n" + session_id.encode()).hexdigest()

"""One-time password-reset links: issued for an e-mail address, redeemed once.

A link carries a random token; only its SHA-256 is stored, with an expiry. Redeeming
marks it used in the same statement that finds it, so two redemptions of one link
cannot both succeed; a new password ends all of the user's sign-ins. A new link for an
address makes its older unused links void, and at most one link per address is issued
per ``COOLDOWN_S`` (a form posted again sends no second mail).
"""

from __future__ import annotations

import secrets
import sqlite3

from collector.accounts import store
from collector.accounts.credentials import digest

COOLDOWN_S = 60.0


def issue(conn: sqlite3.Connection, email: str, now: float, ttl_s: float) -> str | None:
    """A new link's token for the active person with this address; None when there is no
    such person, or a link for it was issued within ``COOLDOWN_S``."""
    found = store.user_by_email(conn, email)
    if found is None:
        return None
    user = found[0]
    if user.disabled_at is not None or user.service:
        return None
    recent = conn.execute(
        "SELECT 1 FROM password_resets WHERE user_id = ? AND created_at > ?",
        (user.id, now - COOLDOWN_S),
    ).fetchone()
    if recent is not None:
        return None
    conn.execute(
        "UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
        (now, user.id),
    )
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO password_resets (user_id, token_hash, created_at, expires_at) "
        "VALUES (?, ?, ?, ?)",
        (user.id, digest(token), now, now + ttl_s),
    )
    return token


def valid(conn: sqlite3.Connection, token: str, now: float) -> bool:
    """Would this token redeem now (unused, not expired)?"""
    row = conn.execute(
        "SELECT 1 FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (digest(token), now),
    ).fetchone()
    return row is not None


def redeem(conn: sqlite3.Connection, token: str, password_hash: str, now: float) -> bool:
    """Set the new password of the link's user and end its sign-ins; False (nothing
    changed) for an unknown, used or expired link, or a user disabled since."""
    row = conn.execute(
        "UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL "
        "AND expires_at > ? RETURNING user_id",
        (now, digest(token), now),
    ).fetchone()
    if row is None:
        return False
    return store.reset_password(conn, int(row[0]), password_hash)

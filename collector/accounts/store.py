"""The accounts' SQL: customers, users, browser sign-ins, API keys and enrollment tokens.

Every function that reads or changes another object takes the asking partner's id and
touches only rows of that partner, so a handler that forgets a check still cannot reach
another organisation's user, key or token. Secrets (sign-in cookies, API keys) are
stored only as SHA-256 hashes (:mod:`collector.secrets_store`).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass

from collector.accounts import partners
from collector.accounts.credentials import APIKEY_PREFIX, PAGE_SESSION_PREFIX, csrf_for, digest
from collector.contracts import repository as contracts_repo
from collector.health import servers

ROLES = ("admin", "operator", "viewer")
"""From most to least: admin manages users, keys, tokens and policies; operator also acts
on incidents; viewer reads."""


class AccountError(ValueError):
    """A request the accounts refuse (unknown role, e-mail taken, unknown customer)."""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    partner_id: int
    partner: str
    role: str
    customer_id: int | None = None
    customer: str | None = None
    service: bool = False
    created_at: float = 0.0
    disabled_at: float | None = None
    last_login_at: float | None = None
    vendor: bool = False
    """A user of the vendor organisation (sees every partner's fleet, changes nothing)."""

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "customer": self.customer,
            "service_account": self.service,
            "created_at": self.created_at,
            "disabled_at": self.disabled_at,
            "last_login_at": self.last_login_at,
        }


_USER_SQL = (
    "SELECT u.id, u.email, u.partner_id, p.name AS partner, u.role, u.customer_id, "
    "c.name AS customer, u.service, u.created_at, u.disabled_at, u.last_login_at, "
    "p.vendor AS vendor "
    "FROM users u JOIN partners p ON p.id = u.partner_id "
    "LEFT JOIN customers c ON c.id = u.customer_id "
)


def _user(row: sqlite3.Row) -> User:
    return User(
        id=int(row["id"]),
        email=row["email"],
        partner_id=int(row["partner_id"]),
        partner=row["partner"],
        role=row["role"],
        customer_id=row["customer_id"],
        customer=row["customer"],
        service=bool(row["service"]),
        created_at=float(row["created_at"]),
        disabled_at=row["disabled_at"],
        last_login_at=row["last_login_at"],
        vendor=bool(row["vendor"]),
    )


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if not (3 <= len(email) <= 254) or "@" not in email[1:-1] or any(c.isspace() for c in email):
        raise AccountError(f"not an e-mail address: {email[:60]!r}")
    return email


# --- organisations ---------------------------------------------------------------------------


def add_customer(conn: sqlite3.Connection, partner_id: int, name: str) -> int:
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a customer needs a name of 1 to 200 characters")
    if partners.is_vendor(conn, partner_id):
        raise AccountError(
            "the vendor organisation has no customers: add the customer to its partner"
        )
    found = conn.execute(
        "SELECT id FROM customers WHERE partner_id = ? AND name = ?", (partner_id, name)
    ).fetchone()
    if found is not None:
        return int(found["id"])
    row = conn.execute(
        "INSERT INTO customers (partner_id, name, created_at) VALUES (?, ?, ?) RETURNING id",
        (partner_id, name, time.time()),
    ).fetchone()
    return int(row[0])


def customer_id(conn: sqlite3.Connection, partner_id: int, name: str) -> int:
    row = conn.execute(
        "SELECT id FROM customers WHERE partner_id = ? AND name = ?", (partner_id, name)
    ).fetchone()
    if row is None:
        raise AccountError(f"no customer {name!r} of this partner")
    return int(row["id"])


def list_customers(conn: sqlite3.Connection, partner_id: int) -> list[str]:
    return [
        r["name"]
        for r in conn.execute(
            "SELECT name FROM customers WHERE partner_id = ? ORDER BY name", (partner_id,)
        )
    ]


def customer_scope(
    conn: sqlite3.Connection, partner_id: int, partner: str, customer: str
) -> tuple[frozenset[str], frozenset[str]]:
    """(server ids, contract ids) a customer's users see: its contracts and what they cover."""
    contracts, licences = contracts_repo.customer_contracts(conn, partner, customer)
    return servers.ids_with_licences(conn, partner_id, licences), frozenset(contracts)


# --- users -----------------------------------------------------------------------------------


def add_user(
    conn: sqlite3.Connection,
    email: str,
    password_hash: str | None,
    partner_id: int,
    role: str,
    customer_id: int | None = None,
    *,
    service: bool = False,
) -> User:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    email = email if service else normal_email(email)
    if conn.execute("SELECT 1 FROM users WHERE email = ?", (email,)).fetchone():
        raise AccountError(f"a user {email!r} already exists")
    row = conn.execute(
        "INSERT INTO users (email, password_hash, partner_id, customer_id, role, service, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (email, password_hash, partner_id, customer_id, role, int(service), time.time()),
    ).fetchone()
    found = get_user(conn, partner_id, int(row[0]))
    assert found is not None
    return found


def service_account(conn: sqlite3.Connection, partner_id: int) -> int:
    """The partner's service account (made on first use): owner of keys made by the CLI."""
    row = conn.execute(
        "SELECT id FROM users WHERE partner_id = ? AND service = 1 ORDER BY id LIMIT 1",
        (partner_id,),
    ).fetchone()
    if row is not None:
        return int(row["id"])
    email = f"service-account.partner-{partner_id}.invalid"
    return add_user(conn, email, None, partner_id, "admin", service=True).id


def get_user(conn: sqlite3.Connection, partner_id: int | None, user_id: int) -> User | None:
    """User ``user_id`` if it belongs to ``partner_id`` (any partner when None)."""
    row = conn.execute(_USER_SQL + "WHERE u.id = ?", (user_id,)).fetchone()
    if row is None or (partner_id is not None and row["partner_id"] != partner_id):
        return None
    return _user(row)


def user_by_email(conn: sqlite3.Connection, email: str) -> tuple[User, str | None] | None:
    """(user, password hash) of an e-mail address, or None."""
    row = conn.execute(
        _USER_SQL.replace("SELECT ", "SELECT u.password_hash, ", 1) + "WHERE u.email = ?",
        (email.strip().lower(),),
    ).fetchone()
    return None if row is None else (_user(row), row["password_hash"])


def list_users(
    conn: sqlite3.Connection, partner_id: int | None, customer_id: int | None = None
) -> list[User]:
    sql, args = _USER_SQL, []
    clauses = []
    if partner_id is not None:
        clauses.append("u.partner_id = ?")
        args.append(partner_id)
    if customer_id is not None:
        clauses.append("u.customer_id = ?")
        args.append(customer_id)
    if clauses:
        sql += "WHERE " + " AND ".join(clauses)
    return [_user(r) for r in conn.execute(sql + " ORDER BY u.email", args)]


def set_disabled(conn: sqlite3.Connection, partner_id: int | None, user_id: int, off: bool) -> bool:
    """Disable (its sign-ins end, its keys stop working) or enable a user; False if unknown."""
    user = get_user(conn, partner_id, user_id)
    if user is None:
        return False
    conn.execute(
        "UPDATE users SET disabled_at = ? WHERE id = ?", (time.time() if off else None, user_id)
    )
    if off:
        conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))
    return True


def grant(
    conn: sqlite3.Connection,
    partner_id: int | None,
    user_id: int,
    role: str,
    customer: int | str | None = "",
) -> bool:
    """Set a user's role (and, unless ``customer`` is "", its customer: None = the partner)."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if get_user(conn, partner_id, user_id) is None:
        return False
    conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
    if customer != "":
        conn.execute("UPDATE users SET customer_id = ? WHERE id = ?", (customer, user_id))
    conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))
    return True


def reset_password(conn: sqlite3.Connection, user_id: int, password_hash: str) -> bool:
    """A new password for an active user, ending all its sign-ins; False if disabled."""
    n = conn.execute(
        "UPDATE users SET password_hash = ? WHERE id = ? AND disabled_at IS NULL",
        (password_hash, user_id),
    ).rowcount
    conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))
    return n == 1


def totp_of(conn: sqlite3.Connection, user_id: int) -> tuple[str | None, int]:
    """(TOTP secret or None when the second factor is off, last accepted step)."""
    row = conn.execute(
        "SELECT totp_secret, totp_last_step FROM users WHERE id = ?", (user_id,)
    ).fetchone()
    return (None, 0) if row is None else (row["totp_secret"], int(row["totp_last_step"]))


def set_totp(conn: sqlite3.Connection, user_id: int, secret: str | None) -> None:
    """Turn the second factor on (with ``secret``) or off; the user's sign-ins end."""
    conn.execute(
        "UPDATE users SET totp_secret = ?, totp_last_step = 0 WHERE id = ?", (secret, user_id)
    )
    conn.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))


def use_totp_step(conn: sqlite3.Connection, user_id: int, step: int) -> bool:
    """Record ``step`` as used; False when it (or a later one) was used already."""
    cur = conn.execute(
        "UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
        (step, user_id, step),
    )
    return cur.rowcount == 1


def note_login(conn: sqlite3.Connection, user_id: int, now: float) -> None:
    conn.execute("UPDATE users SET last_login_at = ? WHERE id = ?", (now, user_id))


# --- browser sign-ins ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    user: User
    csrf: str


def create_session(
    conn: sqlite3.Connection, user_id: int, ttl_s: float, api_key_id: int | None = None
) -> str:
    """A new sign-in for ``user_id``: the cookie value (only its hash is stored)."""
    now = time.time()
    conn.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
    session_id = PAGE_SESSION_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO web_sessions (id_hash, user_id, api_key_id, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (digest(session_id), user_id, api_key_id, now, now + ttl_s),
    )
    return session_id


def session_user(conn: sqlite3.Connection, session_id: str, now: float) -> SignIn | None:
    """The signed-in user, unless the sign-in expired or ended, the user was disabled or
    the API key it was made with was revoked."""
    row = conn.execute(
        "SELECT s.user_id, s.api_key_id, k.revoked_at FROM web_sessions s "
        "LEFT JOIN api_keys k ON k.id = s.api_key_id "
        "WHERE s.id_hash = ? AND s.expires_at > ?",
        (digest(session_id), now),
    ).fetchone()
    if row is None or (row["api_key_id"] is not None and row["revoked_at"] is not None):
        return None
    user = get_user(conn, None, int(row["user_id"]))
    if user is None or user.disabled_at is not None:
        return None
    return SignIn(user, csrf_for(session_id))


def end_session(conn: sqlite3.Connection, session_id: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (digest(session_id),))


# --- API keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyOwner:
    key_id: int
    user: User
    last_used_at: float | None


def create_key(conn: sqlite3.Connection, user: User, label: str = "") -> str:
    key = APIKEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_keys (partner_id, user_id, key_hash, prefix, label, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            user.partner_id,
            user.id,
            digest(key),
            key[: len(APIKEY_PREFIX) + 6],
            label[:100],
            time.time(),
        ),
    )
    return key


def key_owner(conn: sqlite3.Connection, key: str) -> KeyOwner | None:
    """Whose key this is, unless it was revoked or its user disabled."""
    row = conn.execute(
        "SELECT id, user_id, last_used_at FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        (digest(key),),
    ).fetchone()
    if row is None or row["user_id"] is None:
        return None
    user = get_user(conn, None, int(row["user_id"]))
    if user is None or user.disabled_at is not None:
        return None
    return KeyOwner(int(row["id"]), user, row["last_used_at"])


def note_key_used(conn: sqlite3.Connection, key_id: int, now: float) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))


def partner_id_of_key(conn: sqlite3.Connection, key_hash: str) -> int | None:
    """The partner of the key with this hash, unless it was revoked."""
    row = conn.execute(
        "SELECT partner_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        (key_hash,),
    ).fetchone()
    return None if row is None else int(row[0])


def revoke_keys_with_prefix(conn: sqlite3.Connection, prefix: str, now: float) -> int:
    """Revoke every live key starting with ``prefix`` (any partner's); how many."""
    return conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
        (now, prefix),
    ).rowcount


def list_keys(
    conn: sqlite3.Connection, partner_id: int, user_id: int | None = None
) -> list[dict[str, object]]:
    sql = (
        "SELECT k.id, k.prefix, k.label, k.created_at, k.last_used_at, k.revoked_at, "
        "u.email FROM api_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.partner_id = ?"
    )
    args: list[object] = [partner_id]
    if user_id is not None:
        sql += " AND k.user_id = ?"
        args.append(user_id)
    return [
        {
            "id": int(r["id"]),
            "prefix": r["prefix"],
            "label": r["label"],
            "owner": r["email"],
            "created_at": r["created_at"],
            "last_used_at": r["last_used_at"],
            "revoked_at": r["revoked_at"],
        }
        for r in conn.execute(sql + " ORDER BY k.revoked_at IS NOT NULL, k.id DESC", args)
    ]


def revoke_key(
    conn: sqlite3.Connection, partner_id: int, key_id: int, user_id: int | None = None
) -> bool:
    """Revoke one of the partner's keys (of ``user_id`` only, when given); False if unknown."""
    sql = (
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND partner_id = ? AND revoked_at IS NULL"
    )
    args: list[object] = [time.time(), key_id, partner_id]
    if user_id is not None:
        sql += " AND user_id = ?"
        args.append(user_id)
    return conn.execute(sql, args).rowcount > 0


# --- enrollment tokens -----------------------------------------------------------------------


def insert_token(
    conn: sqlite3.Connection,
    partner_id: int,
    token_hash: str,
    uses: int,
    expires_at: float,
    now: float,
    allow_reenroll: bool,
) -> None:
    conn.execute(
        "INSERT INTO enrollment_tokens (partner_id, token_hash, uses_left, expires_at, "
        "created_at, allow_reenroll) VALUES (?, ?, ?, ?, ?, ?)",
        (partner_id, token_hash, uses, expires_at, now, int(allow_reenroll)),
    )


def token_by_hash(conn: sqlite3.Connection, token_hash: str) -> sqlite3.Row | None:
    """The token's id, partner_id, uses_left, expires_at, revoked_at and allow_reenroll."""
    return conn.execute(
        "SELECT id, partner_id, uses_left, expires_at, revoked_at, allow_reenroll "
        "FROM enrollment_tokens "
        "WHERE token_hash = ?",
        (token_hash,),
    ).fetchone()


def use_token(conn: sqlite3.Connection, token_id: int) -> None:
    conn.execute("UPDATE enrollment_tokens SET uses_left = uses_left - 1 WHERE id = ?", (token_id,))


def list_tokens(conn: sqlite3.Connection, partner_id: int) -> list[dict[str, object]]:
    return [
        {
            "id": int(r["id"]),
            "uses_left": int(r["uses_left"]),
            "created_at": r["created_at"],
            "expires_at": r["expires_at"],
            "revoked_at": r["revoked_at"],
            "allow_reenroll": bool(r["allow_reenroll"]),
        }
        for r in conn.execute(
            "SELECT id, uses_left, created_at, expires_at, revoked_at, allow_reenroll "
            "FROM enrollment_tokens WHERE partner_id = ? "
            "ORDER BY revoked_at IS NOT NULL, id DESC",
            (partner_id,),
        )
    ]


def revoke_token(conn: sqlite3.Connection, partner_id: int, token_id: int) -> bool:
    return (
        conn.execute(
            "UPDATE enrollment_tokens SET revoked_at = ? "
            "WHERE id = ? AND partner_id = ? AND revoked_at IS NULL",
            (time.time(), token_id, partner_id),
        ).rowcount
        > 0
    )

"""Passwords at rest: argon2id (``argon2-cffi``'s defaults, RFC 9106's second choice).

Hashing costs about 64 MiB and tens of milliseconds on purpose, so callers on the event
loop run it in a thread. An unknown e-mail address is checked against a dummy hash, so
the time a sign-in takes does not tell whether the address exists.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 512
_hasher = PasswordHasher()


@cache
def _dummy() -> str:
    """The hash an unknown address is checked against: made on first use, not at import,
    since every ``vigil-collector`` command imports this module and most never verify one
    (a hash costs about 0.2 s of CPU)."""
    return _hasher.hash("not a password anyone has")


def prepare() -> None:
    """Make the dummy hash now (a server does at start, in a thread), so the first sign-in
    with an unknown address costs no more than any other."""
    _dummy()


class WeakPassword(ValueError):
    pass


def check_new(password: str) -> None:
    """Refuse a password too short to resist guessing, or absurdly long."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    check_new(password)
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; always spends one verification."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False

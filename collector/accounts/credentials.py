"""The shapes of the collector's credentials: their prefixes and how they are hashed.

Enrollment tokens, API keys and browser sign-ins are 192 bits or more from
:mod:`secrets`, so a plain SHA-256 is enough to store them; a sign-in's CSRF token is
derived from its cookie. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib

TOKEN_PREFIX = "vgl_enr_"
APIKEY_PREFIX = "vgl_key_"
PAGE_SESSION_PREFIX = "vgl_web_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_for(session_id: str) -> str:
    """The CSRF token of a sign-in: a hash of its secret cookie, so only its holder has it."""
    return hashlib.sha256(b"vigil-csrf-v1\n" + session_id.encode()).hexdigest()

"""Session keys at rest: sealed under a key that lives only in this process's memory.

A session's HMAC key is stored (so every reader thread and connection finds it) only
encrypted with AES-256-GCM under a random key made when the collector starts, with the
session id as associated data. A copy of the database therefore holds no key that signs
an agent request, and after a restart every stored session is unusable: the collector
answers 401 ``session_unknown`` and the agent opens a new session. A request captured
before a restart cannot be replayed after it, although the nonce memory did not survive.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


class SessionSealer:
    """Seals and opens session keys for this process's lifetime."""

    def __init__(self) -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def seal(self, session_id: str, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, key, session_id.encode())

    def open(self, session_id: str, sealed: bytes) -> bytes | None:
        """The key, or None for a session sealed by another process (or tampered with)."""
        if len(sealed) <= _NONCE:
            return None
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], session_id.encode())
        except InvalidTag:
            return None

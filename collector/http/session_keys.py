"""Session keys at rest: sealed under the installation's session key file.

A session's HMAC key is stored (so every reader thread, connection and collector process
finds it) only encrypted with AES-256-GCM under the *sealing key*, with the session id as
associated data. The sealing key is 32 random bytes in a file the database does not hold:
``session.key`` in the data directory, made 0600 at first start (one machine, any number
of ``serve --workers`` processes), or ``[http] session_key_file`` naming a file every
machine of an installation is given (several machines on one PostgreSQL). So a session
opened through one process works through every other and across restarts, while a copy
of the database alone signs nothing: without the key file, its sealed keys open for no one.

Changing the key file (or losing it) makes every stored session unusable, which is
harmless: the collector answers 401 ``session_unknown`` and the agent opens a new session.

Opening a sealed key (AES-GCM) on every request of a session cost a few per cent of a
report's CPU; the opened keys of the most recent sessions are kept in memory (a bounded
LRU), each with the sealed bytes it was opened from. A key is only ever handed out for the
very sealed bytes the database holds, so this cache changes nothing of who is let in
(how long a session's lookup itself is kept is :mod:`collector.http.session_cache`'s).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from collector.key_files import load_key_file

_NONCE = 12
OPENED_KEYS = 16384
"""How many opened session keys are kept in memory (about 200 bytes each)."""
KEY_FILE = "session.key"
"""The sealing key's file in the data directory when ``[http] session_key_file`` is unset."""


def load_key(data_dir: Path, configured: Path | None = None) -> bytes:
    """The installation's sealing key: ``configured`` (which must exist), else
    ``data_dir/session.key`` (made at first start). Raises
    :class:`~collector.key_files.KeyFileError` naming the file and what to do."""
    return load_key_file(
        configured if configured is not None else data_dir / KEY_FILE,
        make=configured is None,
        setting="[http] session_key_file",
        what="session key",
    )


class SessionSealer:
    """Seals and opens session keys under the installation's sealing key."""

    def __init__(self, key: bytes | None = None) -> None:
        """``key`` is the sealing key (:func:`load_key`); None makes a random one that
        lives only as long as this object (for tests of a single in-process app)."""
        self._aead = AESGCM(key if key is not None else AESGCM.generate_key(bit_length=256))
        self._opened: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        """session id -> (the sealed bytes, the key they open to), most recent last."""

    def seal(self, session_id: str, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, key, session_id.encode())

    def open(self, session_id: str, sealed: bytes) -> bytes | None:
        """The key, or None for a session sealed under another key (or tampered with).
        Kept opened for the same ``sealed`` bytes (:data:`OPENED_KEYS` sessions)."""
        opened = self._opened.get(session_id)
        if opened is not None and opened[0] == sealed:
            self._opened.move_to_end(session_id)
            return opened[1]
        if len(sealed) <= _NONCE:
            return None
        try:
            key = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], session_id.encode())
        except InvalidTag:
            return None
        self._opened[session_id] = (sealed, key)
        if len(self._opened) > OPENED_KEYS:
            self._opened.popitem(last=False)
        return key

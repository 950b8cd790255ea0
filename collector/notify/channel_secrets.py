"""Channel secrets at rest: webhook signing secrets, SMTP passwords, Apprise URLs.

The collector has to use them (sign, log in), so they cannot be hashed: each is stored
encrypted with AES-256-GCM under a key kept in a file of its own: ``notify.key`` in the
data directory (mode 0600, made on first use), or ``[notify] key_file`` naming a file every
collector machine of an installation is given (it must exist). The channel id is the
associated data. A copy of the database alone (a backup, a support dump) therefore holds
no usable secret. The API and the CLI show a secret only when it is created.
"""

from __future__ import annotations

import os
import secrets
from base64 import b64encode
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from collector.key_files import load_key_file

KEY_FILE = "notify.key"
_NONCE = 12


class SecretUnreadable(ValueError):
    """The stored secret does not open with this data directory's key."""


def load_notify_key(data_dir: Path, key_file: str = "") -> bytes:
    """The key channel secrets are sealed under: ``key_file`` if set (it must exist),
    else ``notify.key`` in ``data_dir`` (made at first use). Raises
    :class:`~collector.key_files.KeyFileError` naming the file and what to do."""
    return load_key_file(
        Path(key_file) if key_file else Path(data_dir) / KEY_FILE,
        make=not key_file,
        setting="[notify] key_file",
        what="notification key",
    )


class SecretBox:
    """Seals and opens channel secrets with the installation's notification key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, channel_id: str, secret: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), channel_id.encode())

    def open(self, channel_id: str, sealed: bytes | None) -> str:
        if not sealed:
            return ""
        try:
            return self._aead.decrypt(
                sealed[:_NONCE], sealed[_NONCE:], channel_id.encode()
            ).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable(f"channel {channel_id}: secret does not open") from exc


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + b64encode(secrets.token_bytes(32)).decode()

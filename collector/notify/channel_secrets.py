"""Channel secrets at rest: webhook signing secrets, SMTP passwords, Apprise URLs.

The collector has to use them (sign, log in), so they cannot be hashed: each is stored
encrypted with AES-256-GCM under a key kept in a file of its own in the data directory
(``notify.key``, mode 0600, made on first use), with the channel id as associated data.
A copy of the database alone (a backup, a support dump) therefore holds no usable
secret. The API and the CLI show a secret only when it is created.
"""

from __future__ import annotations

import os
import secrets
from base64 import b64encode
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from collector.key_files import make_once
from collector.private_files import private_file

KEY_FILE = "notify.key"
_NONCE = 12


class SecretUnreadable(ValueError):
    """The stored secret does not open with this data directory's key."""


class SecretBox:
    """Seals and opens channel secrets with the data directory's key."""

    def __init__(self, data_dir: Path) -> None:
        path = Path(data_dir) / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Workers starting at once all read the first one's key, never a half-made file.
            make_once(path)
        private_file(path)
        self._aead = AESGCM(path.read_bytes()[:32])

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

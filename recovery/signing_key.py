"""The partner's recipient-signing key, kept in the recovery identity file.

``vigil-backup keygen`` writes an Ed25519 key beside the age identity, as a comment line
(stock ``age -d -i`` skips ``#`` lines, so the file still decrypts with age alone)::

    # vigil-signing-key: VIGIL-SIGNING-KEY-<base64url of the 32-byte private key>

It signs the recipient list the collector forwards to agents (``sign-recipients``);
agents pin its fingerprint at enrollment. It is as secret as the identity itself.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

LINE_PREFIX = "# vigil-signing-key: "
KEY_PREFIX = "VIGIL-SIGNING-KEY-"


class SigningKeyError(ValueError):
    pass


def signing_line(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return LINE_PREFIX + KEY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_signing_key(text: str) -> Ed25519PrivateKey:
    """The signing key in an identity file's text, or ``SigningKeyError`` saying why."""
    for line in text.splitlines():
        if not line.startswith(LINE_PREFIX):
            continue
        value = line[len(LINE_PREFIX) :].strip()
        if not value.startswith(KEY_PREFIX):
            break
        b64 = value[len(KEY_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except (binascii.Error, ValueError):
            break
        if len(raw) != 32:
            break
        return Ed25519PrivateKey.from_private_bytes(raw)
    else:
        raise SigningKeyError(
            "the key file has no recipient-signing key (it was made before signed recipient "
            "lists): add one with 'vigil-backup keygen --add-signing-key --out FILE'"
        )
    raise SigningKeyError("the key file's vigil-signing-key line is damaged")

"""The partner's signed list of backup recipients: who an agent may encrypt backups to.

The collector hands agents the ``age1…`` recipients every backup is encrypted to. A
collector that could add one of its own would read every later backup, so the partner
signs the list offline with an Ed25519 key kept beside its recovery identity
(``vigil-backup sign-recipients``), the collector only stores and forwards the signed
text, and an agent that pinned the partner's signing-key fingerprint at enrollment
encrypts to no recipient the list does not name. See ``docs/backup-format.md``.

Text form (one line, safe on a command line): ``vigil-recipients-v1:`` followed by the
unpadded base64url of the JSON ``{"list": {...}, "signature": "<base64>"}``; the
signature is Ed25519 over ``SIGNING_CONTEXT + canonical(list)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import TYPE_CHECKING, Annotated

import msgspec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

# ``cryptography`` is imported by the functions that sign and verify: the agent reads
# fingerprints from this module at every start, and an agent that is not running a
# backup does without that library (see agent/agent_key.py).

LIST_VERSION = 1
PREFIX = "vigil-recipients-v1:"
SIGNING_CONTEXT = b"vigil-recipient-list-v1\n"
MAX_RECIPIENTS = 16
MAX_TEXT = 8192

_FP = re.compile(r"^[0-9a-f]{64}$")


class RecipientListError(ValueError):
    """The text is not a signed recipient list, does not verify, or names the wrong signer."""


class RecipientList(msgspec.Struct, kw_only=True):
    """The signed part."""

    version: int = LIST_VERSION
    signer: Annotated[str, msgspec.Meta(max_length=64)]
    """The partner's raw Ed25519 public key, base64."""
    created_at: float
    """When the partner signed it: an agent refuses a list older than one it already used."""
    recipients: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=200)]],
        msgspec.Meta(min_length=1, max_length=MAX_RECIPIENTS),
    ]


class SignedRecipientList(msgspec.Struct, kw_only=True):
    list: RecipientList
    signature: Annotated[str, msgspec.Meta(max_length=128)]


_enc = msgspec.json.Encoder(order="sorted")


def fingerprint(public_key: bytes) -> str:
    """The fingerprint of a raw Ed25519 public key: SHA-256, 64 lowercase hex digits."""
    return hashlib.sha256(public_key).hexdigest()


def key_fingerprint(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return fingerprint(pub.public_bytes_raw())


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as typed (any case, optional ``sha256:`` prefix, ``:`` or spaces between
    groups) in canonical form, or ``RecipientListError``."""
    value = text.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    value = value.replace(":", "").replace(" ", "")
    if not _FP.match(value):
        raise RecipientListError(
            f"not a signing-key fingerprint (expected 64 hex digits): {text[:80]!r}"
        )
    return value


def is_signed_list(text: str) -> bool:
    return text.strip().startswith(PREFIX)


def sign(recipients: list[str], key: Ed25519PrivateKey, created_at: float) -> str:
    """The text form of ``recipients`` signed by ``key``."""
    checked = sorted({_check_recipient(r) for r in recipients})
    pub = key.public_key().public_bytes_raw()
    body = RecipientList(
        signer=base64.b64encode(pub).decode(), created_at=created_at, recipients=checked
    )
    sig = key.sign(SIGNING_CONTEXT + _enc.encode(body))
    signed = SignedRecipientList(list=body, signature=base64.b64encode(sig).decode())
    return PREFIX + base64.urlsafe_b64encode(_enc.encode(signed)).decode().rstrip("=")


def _check_recipient(text: str) -> str:
    # Imported here: the agent reads its pinned list at start, and the age module (with
    # its ciphers) should load only when a backup runs.
    from protocol.backup_archive import AgeError, parse_recipient

    try:
        parse_recipient(text)
    except AgeError as exc:
        raise RecipientListError(f"{text[:80]!r}: {exc}") from None
    return text.strip()


def verify(text: str, pinned: str | None = None) -> RecipientList:
    """Decode and verify a signed list. With ``pinned`` (a fingerprint) the signer must be
    that key. Raises ``RecipientListError`` saying what is wrong; never anything else."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    value = text.strip()
    if not value.startswith(PREFIX):
        raise RecipientListError(f"not a signed recipient list (expected {PREFIX}…)")
    if len(value) > MAX_TEXT:
        raise RecipientListError("signed recipient list too long")
    raw = value[len(PREFIX) :]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        signed = msgspec.json.decode(data, type=SignedRecipientList)
        signer = base64.b64decode(signed.list.signer, validate=True)
        sig = base64.b64decode(signed.signature, validate=True)
    except (binascii.Error, ValueError, msgspec.MsgspecError) as exc:
        raise RecipientListError(f"malformed signed recipient list: {exc}") from None
    if signed.list.version != LIST_VERSION:
        raise RecipientListError(f"unsupported recipient list version {signed.list.version}")
    if len(signer) != 32:
        raise RecipientListError("the recipient list's signer is not an Ed25519 key")
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(
            sig, SIGNING_CONTEXT + _enc.encode(signed.list)
        )
    except (InvalidSignature, ValueError):
        raise RecipientListError("the recipient list's signature does not verify") from None
    if pinned is not None and fingerprint(signer) != pinned:
        raise RecipientListError(
            f"the recipient list is signed by key {fingerprint(signer)}, not by the partner's "
            f"pinned signing key {pinned}"
        )
    for r in signed.list.recipients:
        _check_recipient(r)
    return signed.list

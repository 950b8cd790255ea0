"""Vigil's envelope around an encrypted backup: what the agent signs, the collector checks.

A stored backup is two objects: the age file itself (``<id>.age``, standard
age-encryption.org/v1, decryptable with the stock ``age`` tool) and this envelope
(``<id>.envelope.json``). The envelope binds the server, the sequence number, the time
and the ciphertext's SHA-256 and size, and carries the agent's Ed25519 signature over
all of that. The collector verifies the envelope without any key able to decrypt; the
partner's ``vigil-backup`` verifies it again before it decrypts. See
``docs/backup-format.md``.
"""

from __future__ import annotations

import base64
from typing import Annotated, Literal, Protocol

import msgspec

from protocol import limits


class Signer(Protocol):
    """An Ed25519 private key: ``cryptography``'s, or the agent's own (libsodium)."""

    def sign(self, data: bytes) -> bytes: ...


ENVELOPE_VERSION = 1
SIGNING_CONTEXT = b"vigil-backup-envelope-v1\n"

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=limits.MAX_INT)]
"""Sizes and counts fit a signed 64-bit column."""


class BackupHeader(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The signed part of the envelope.

    ``kind`` is ``full`` for a new encrypted archive, ``unchanged`` for a record that the
    configuration is the same as backup ``base_seq`` (no ciphertext is uploaded then).
    """

    version: Annotated[int, msgspec.Meta(ge=0, le=limits.MAX_INT)] = ENVELOPE_VERSION
    kind: Literal["full", "unchanged"] = "full"
    server_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    seq: Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_INT)]
    created_at: Annotated[float, msgspec.Meta(ge=0, le=limits.MAX_TIMESTAMP)]
    ciphertext_sha256: Sha256Hex | None = None
    ciphertext_size: Count | None = None
    content_digest: Sha256Hex | None = None
    """SHA-256 of the archive's manifest (plaintext side): equal digests = unchanged config."""
    base_seq: Annotated[int, msgspec.Meta(ge=1, le=limits.MAX_INT)] | None = None
    recipients: list[Annotated[str, msgspec.Meta(max_length=200)]] = []
    format: str = "tar+zstd+age"
    files: Count | None = None
    plaintext_size: Count | None = None


class Envelope(msgspec.Struct, kw_only=True):
    header: BackupHeader
    signature: str
    """Ed25519 over ``SIGNING_CONTEXT + canonical(header)``, base64."""


_enc = msgspec.json.Encoder(order="sorted")


def canonical(header: BackupHeader) -> bytes:
    """Deterministic bytes of a header: sorted keys, compact JSON, defaults omitted."""
    return _enc.encode(header)


def sign(header: BackupHeader, key: Signer) -> Envelope:
    sig = key.sign(SIGNING_CONTEXT + canonical(header))
    return Envelope(header=header, signature=base64.b64encode(sig).decode())


class EnvelopeError(ValueError):
    """The envelope is malformed, or its signature does not verify."""


def verify(envelope: Envelope, public_key: bytes) -> BackupHeader:
    """Check the signature with the agent's raw Ed25519 public key; return the header."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = base64.b64decode(envelope.signature, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            sig, SIGNING_CONTEXT + canonical(envelope.header)
        )
    except (InvalidSignature, ValueError) as exc:
        raise EnvelopeError("backup envelope signature does not verify") from exc
    if envelope.header.version != ENVELOPE_VERSION:
        raise EnvelopeError(f"unsupported envelope version {envelope.header.version}")
    return envelope.header


def encode(envelope: Envelope) -> bytes:
    return msgspec.json.encode(envelope)


def decode(data: bytes) -> Envelope:
    try:
        return msgspec.json.decode(data, type=Envelope)
    except msgspec.MsgspecError as exc:
        raise EnvelopeError(f"malformed backup envelope: {exc}") from exc
    except RecursionError:  # msgspec descends into unknown fields too
        raise EnvelopeError("malformed backup envelope: nested too deeply") from None

"""The agent's own asymmetric keys on libsodium (PyNaCl): its Ed25519 identity and the
ephemeral X25519 key of each session.

A running agent signs once per session and derives one session key; everything else is
HMAC (``protocol.request_auth``). Doing those two operations with PyNaCl keeps
``cryptography`` (about 9 MB of resident memory for its OpenSSL build) out of an agent
that is only reporting health: it loads when a backup runs (age encryption) or for a
key file this module does not read itself. ``docs/decisions.md`` has the figures.

The key file stays what it was: PKCS#8 PEM (RFC 8410), ``-----BEGIN PRIVATE KEY-----``.
"""

from __future__ import annotations

import base64

from nacl.bindings import crypto_scalarmult
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey as _X25519Private
from nacl.signing import SigningKey

_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_PEM_END = b"-----END PRIVATE KEY-----"
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
"""DER of a PKCS#8 v1 Ed25519 private key up to its 32-byte seed (RFC 8410, section 7)."""


class AgentKey:
    """An Ed25519 private key with the part of ``cryptography``'s ``Ed25519PrivateKey``
    interface the agent uses: ``sign``, ``public_bytes_raw``, ``private_bytes_raw``."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")
        self._key = SigningKey(seed)

    @classmethod
    def generate(cls) -> AgentKey:
        return cls(bytes(SigningKey.generate()))

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data`` (RFC 8032, as ``cryptography``)."""
        return self._key.sign(data).signature

    def public_bytes_raw(self) -> bytes:
        return self._key.verify_key.encode()

    def private_bytes_raw(self) -> bytes:
        return bytes(self._key)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, byte for byte what ``cryptography`` writes for this key."""
        b64 = base64.b64encode(_PKCS8_ED25519 + self.private_bytes_raw())
        lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
        return b"\n".join([_PEM_BEGIN, *lines, _PEM_END]) + b"\n"

    @classmethod
    def from_pem(cls, pem: bytes) -> AgentKey:
        """Read a PKCS#8 PEM Ed25519 key. The form this module writes is parsed here; any
        other encoding of an Ed25519 key is handed to ``cryptography``. ``ValueError`` when
        it is not an unencrypted Ed25519 private key."""
        text = pem.strip()
        if text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END):
            body = b"".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
            try:
                der = base64.b64decode(body, validate=True)
            except ValueError:
                der = b""
            if len(der) == 48 and der.startswith(_PKCS8_ED25519):
                return cls(der[16:])
        return cls._from_other_pem(pem)

    @classmethod
    def _from_other_pem(cls, pem: bytes) -> AgentKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a readable private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 key")
        return cls(key.private_bytes_raw())


class EphemeralX25519:
    """One session's X25519 key pair (``exchange`` as ``cryptography``'s)."""

    __slots__ = ("_key",)

    def __init__(self) -> None:
        self._key = _X25519Private.generate()

    def public_bytes_raw(self) -> bytes:
        return self._key.public_key.encode()

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret; ``ValueError`` for a malformed or low-order peer key."""
        if len(peer_public) != 32:
            raise ValueError("an X25519 public key is 32 bytes")
        try:
            return crypto_scalarmult(bytes(self._key), peer_public)
        except CryptoError:  # libsodium refuses an all-zero (low-order) result
            raise ValueError("X25519 peer key is a low-order point") from None

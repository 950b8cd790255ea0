"""The encrypted backup archive: tar (PAX) + zstd + age, and its manifest.

Shared by the agent (which writes archives) and ``vigil-backup`` (which reads them). The
format is described in ``docs/backup-format.md``; in short::

    age-encryption.org/v1 file ( zstd frame(s) ( PAX tar ( files..., .vigil/manifest.json ) ) )

This module holds the two pieces both sides need and that must never drift apart:

- the age file format (age-encryption.org/v1, X25519 recipients only), written on
  ``cryptography`` as a push-style writer (``AgeWriter``) and a pull-style reader
  (``AgeReader``), so tar -> zstd -> age -> file streams in one thread with flat memory;
  files made here decrypt with the stock ``age`` tool and files made by ``age -r`` decrypt
  here (``docs/decisions/backup-format.md`` says why not pyrage, with figures);
- the manifest (per-file SHA-256 and metadata) and its ``content_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Literal, Protocol

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ARCHIVE_VERSION = 1
"""Version of the archive layout (the manifest's ``version``); see docs/backup-format.md."""
MANIFEST_NAME = ".vigil/manifest.json"
"""The manifest is the last tar member (written after every file has been hashed)."""
FORMAT = "tar+zstd+age"

# --- bech32 (BIP 173), as age uses it for keys: no 90-character limit ---------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _convertbits(data: Iterable[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    ret: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise ValueError("invalid bech32 data")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise ValueError("invalid bech32 padding")
    return ret


def bech32_encode(hrp: str, data: bytes) -> str:
    five = _convertbits(data, 8, 5, True)
    polymod = _polymod([*_hrp_expand(hrp), *five, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in five + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed-case bech32 string")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("malformed bech32 string")
    hrp, rest = text[:pos], text[pos + 1 :]
    try:
        data = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise ValueError("invalid bech32 character") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise ValueError("bech32 checksum mismatch")
    return hrp, bytes(_convertbits(data[:-6], 5, 8, False))


# --- keys ----------------------------------------------------------------------------------


class AgeError(ValueError):
    """A key, header or payload is malformed, or does not authenticate."""


def parse_recipient(text: str) -> bytes:
    """Raw X25519 public key of an ``age1…`` recipient."""
    try:
        hrp, raw = bech32_decode(text.strip())
    except ValueError as exc:
        raise AgeError(f"not an age recipient: {exc}") from None
    if hrp != "age" or len(raw) != 32:
        raise AgeError("not an age X25519 recipient (expected age1…)")
    return raw


def parse_identity(text: str) -> X25519PrivateKey:
    """An ``AGE-SECRET-KEY-1…`` identity."""
    try:
        hrp, raw = bech32_decode(text.strip())
    except ValueError as exc:
        raise AgeError(f"not an age identity: {exc}") from None
    if hrp != "age-secret-key-" or len(raw) != 32:
        raise AgeError("not an age X25519 identity (expected AGE-SECRET-KEY-1…)")
    return X25519PrivateKey.from_private_bytes(raw)


def read_identities(text: str) -> list[X25519PrivateKey]:
    """Identities in an age key file (``#`` comments and blank lines ignored)."""
    keys = [
        parse_identity(line)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise AgeError("no AGE-SECRET-KEY-1… identity in the key file")
    return keys


def recipient_of(identity: X25519PrivateKey) -> str:
    raw = identity.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return bech32_encode("age", raw)


def generate_identity() -> tuple[str, str]:
    """A fresh identity: (``AGE-SECRET-KEY-1…``, ``age1…``)."""
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return bech32_encode("age-secret-key-", raw).upper(), recipient_of(key)


# --- age-encryption.org/v1 -----------------------------------------------------------------

AGE_INTRO = b"age-encryption.org/v1\n"
CHUNK_SIZE = 64 * 1024
_TAG = 16
_X25519_LABEL = b"age-encryption.org/v1/X25519"
_MAX_HEADER = 64 * 1024
_MAX_STANZAS = 64


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    """Canonical unpadded base64 (age rejects padding and non-canonical encodings)."""
    if b"=" in data or b"\r" in data or b"\n" in data:
        raise AgeError("non-canonical base64 in age header")
    try:
        out = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    except ValueError:
        raise AgeError("invalid base64 in age header") from None
    if _b64(out) != data:
        raise AgeError("non-canonical base64 in age header")
    return out


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _stanza_lines(kind: bytes, args: Sequence[bytes], body: bytes) -> bytes:
    enc = _b64(body)
    lines = [enc[i : i + 64] for i in range(0, len(enc), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append(b"")
    return b"-> " + b" ".join([kind, *args]) + b"\n" + b"".join(ln + b"\n" for ln in lines)


def _wrap_x25519(file_key: bytes, recipient: bytes) -> bytes:
    eph = X25519PrivateKey.generate()
    share = eph.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient))
    if shared == bytes(32):
        raise AgeError("X25519 recipient is a low-order point")
    wrap_key = _hkdf(shared, share + recipient, _X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    return _stanza_lines(b"X25519", [_b64(share)], body)


def _unauthentic(counter: int) -> AgeError:
    return AgeError(
        f"age payload chunk {counter} does not authenticate (altered, reordered or truncated)"
    )


def _refuse_empty_last(last: bool, size: int, counter: int) -> None:
    """The last chunk may be empty only when it is the only one (age's rule)."""
    if last and not size and counter > 0:
        raise AgeError("age payload ends with an empty chunk")


def _payload_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Writable(Protocol):
    """Where an encrypted stream goes: anything with a binary ``write``."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def flush(self) -> None: ...


class AgeWriter:
    """Write-only file object that encrypts to an age file on ``out`` (which it does not close).

    A fresh 128-bit file key per file, wrapped for every X25519 recipient; the payload in
    64 KiB ChaCha20-Poly1305 STREAM chunks (the last one flagged), so memory is one chunk.
    ``close()`` writes the final chunk and must be called.
    """

    def __init__(self, out: Writable, recipients: Sequence[str]) -> None:
        if not recipients:
            raise AgeError("no age recipients to encrypt to")
        raw = [parse_recipient(r) for r in recipients]
        file_key = os.urandom(16)
        header = AGE_INTRO + b"".join(_wrap_x25519(file_key, r) for r in raw) + b"---"
        mac = hmac.new(_hkdf(file_key, b"", b"header"), header, hashlib.sha256).digest()
        nonce = os.urandom(16)
        out.write(header + b" " + _b64(mac) + b"\n" + nonce)
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._out = out
        self._buf = bytearray()
        self._counter = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed AgeWriter")
        view = memoryview(data).cast("B")
        n = len(view)
        if self._buf and len(self._buf) + n > CHUNK_SIZE:
            take = CHUNK_SIZE - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
            self._seal(self._buf, last=False)
            self._buf = bytearray()
        # Whole chunks straight from the caller's buffer, always keeping at least one byte
        # back: whether a chunk is the last one is only known at close().
        whole = (len(view) - 1) // CHUNK_SIZE * CHUNK_SIZE if len(view) > CHUNK_SIZE else 0
        for off in range(0, whole, CHUNK_SIZE):
            self._seal(view[off : off + CHUNK_SIZE], last=False)
        self._buf += view[whole:]
        return n

    def _seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> None:
        nonce = _payload_nonce(self._counter, last)
        self._out.write(self._aead.encrypt(nonce, chunk, None))  # any buffer: no copy
        self._counter += 1

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        if not self.closed:
            self._seal(self._buf, last=True)
            self._buf = bytearray()
            self.closed = True

    def __enter__(self) -> AgeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def _read_line(src: BinaryIO, budget: list[int]) -> bytes:
    line = src.readline(budget[0] + 1)
    budget[0] -= len(line)
    if budget[0] < 0:
        raise AgeError("age header too long")
    if not line.endswith(b"\n"):
        raise AgeError("truncated age header")
    return line[:-1]


class AgeReader:
    """Read-only file object that decrypts an age file from ``src`` (a buffered reader).

    The header MAC is checked before any payload is returned; every 64 KiB chunk is
    authenticated before its bytes are handed out; a missing final chunk (truncation), a
    chunk out of order, or trailing data raises ``AgeError``.
    """

    def __init__(self, src: BinaryIO, identities: Sequence[X25519PrivateKey]) -> None:
        budget = [_MAX_HEADER]
        if src.read(len(AGE_INTRO)) != AGE_INTRO:
            raise AgeError("not an age-encryption.org/v1 file (armored files are not supported)")
        header = bytearray(AGE_INTRO)
        stanzas: list[tuple[list[bytes], bytes]] = []
        while True:
            line = _read_line(src, budget)
            if line.startswith(b"--- "):
                header += b"---"
                mac = _unb64(line[4:])
                break
            if not line.startswith(b"-> "):
                raise AgeError("malformed age header line")
            args = line[3:].split(b" ")
            if not args or any(not a for a in args):
                raise AgeError("malformed age stanza")
            header += line + b"\n"
            body = bytearray()
            while True:
                bl = _read_line(src, budget)
                header += bl + b"\n"
                if len(bl) > 64:
                    raise AgeError("age stanza line too long")
                body += bl
                if len(bl) < 64:
                    break
            stanzas.append((args, _unb64(bytes(body))))
            if len(stanzas) > _MAX_STANZAS:
                raise AgeError("too many age stanzas")
        file_key = self._unwrap(stanzas, identities)
        expect = hmac.new(_hkdf(file_key, b"", b"header"), bytes(header), hashlib.sha256).digest()
        if not hmac.compare_digest(expect, mac):
            raise AgeError("age header MAC does not verify (header altered)")
        nonce = src.read(16)
        if len(nonce) != 16:
            raise AgeError("truncated age payload nonce")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._src = src
        self._counter = 0
        self._pending: bytes | memoryview = src.read(CHUNK_SIZE + _TAG)
        self._plain = memoryview(b"")
        self._done = False
        self.closed = False

    @staticmethod
    def _unwrap(
        stanzas: list[tuple[list[bytes], bytes]], identities: Sequence[X25519PrivateKey]
    ) -> bytes:
        for args, body in stanzas:
            if args[0] != b"X25519":
                continue  # other recipient types and grease stanzas are skipped
            if len(args) != 2 or len(body) != 32:
                raise AgeError("malformed X25519 stanza")
            share = _unb64(args[1])
            if len(share) != 32:
                raise AgeError("malformed X25519 stanza")
            for ident in identities:
                shared = ident.exchange(X25519PublicKey.from_public_bytes(share))
                if shared == bytes(32):
                    raise AgeError("X25519 stanza with a low-order point")
                mine = ident.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                key = _hkdf(shared, share + mine, _X25519_LABEL)
                try:
                    return ChaCha20Poly1305(key).decrypt(bytes(12), body, None)
                except InvalidTag:
                    continue
        raise AgeError("no identity matches any recipient of this age file")

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        chunk = self._pending
        if not chunk:
            raise AgeError("age payload truncated (final chunk missing)")
        last = len(chunk) < CHUNK_SIZE + _TAG
        if not last:
            self._pending = self._src.read(CHUNK_SIZE + _TAG)
            last = not self._pending
        if len(chunk) < _TAG:
            raise AgeError("age payload truncated")
        try:
            plain = self._aead.decrypt(_payload_nonce(self._counter, last), chunk, None)
        except InvalidTag:
            raise _unauthentic(self._counter) from None
        _refuse_empty_last(last, len(plain), self._counter)
        self._counter += 1
        self._plain = memoryview(plain)
        if last:
            self._done = True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts: list[bytes] = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if n >= 2 * CHUNK_SIZE and not self._plain and not self._done:
            return self._read_chunks(n // CHUNK_SIZE)  # type: ignore[return-value]
        while not self._plain and not self._done:
            self._next_chunk()
        out = self._plain[:n]
        self._plain = self._plain[len(out) :]
        whole = out.obj
        if isinstance(whole, bytes) and len(whole) == len(out):
            return whole  # a whole chunk asked for (zstd reads 128 KiB): no copy
        return bytes(out)

    def _read_chunks(self, k: int) -> bytearray:
        """Up to ``k`` whole chunks decrypted into one buffer: their ciphertext read from
        ``src`` in one call and decrypted in place (``decrypt_into``), so a reader asking
        for a megabyte costs one read, one hash update and no copy. Each chunk is checked
        exactly as ``_next_chunk`` checks it (the same counter, the same last flag: the
        last chunk is the one nothing follows)."""
        full = CHUNK_SIZE + _TAG
        first = self._pending
        if not first:
            raise AgeError("age payload truncated (final chunk missing)")
        more = memoryview(self._src.read(k * full) if len(first) == full else b"")
        ended = len(more) < k * full
        chunks = [memoryview(first)]
        chunks += [more[i : i + full] for i in range(0, len(more), full)]
        if ended:
            self._pending = b""
        else:
            self._pending = chunks.pop()  # its successor decides whether it is the last
        if len(chunks[-1]) < _TAG:
            raise AgeError("age payload truncated")
        out = bytearray(sum(len(c) for c in chunks) - _TAG * len(chunks))
        view = memoryview(out)
        pos = 0
        for i, chunk in enumerate(chunks):
            last = ended and i == len(chunks) - 1
            size = len(chunk) - _TAG
            try:
                self._aead.decrypt_into(
                    _payload_nonce(self._counter, last), chunk, None, view[pos : pos + size]
                )
            except InvalidTag:
                raise _unauthentic(self._counter) from None
            _refuse_empty_last(last, size, self._counter)
            self._counter += 1
            pos += size
        self._done = ended
        return out

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> AgeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- manifest ------------------------------------------------------------------------------

EntryType = Literal["file", "dir", "symlink"]


class ManifestEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One archived path. ``path`` is the tar member name (relative, ``/``-separated)."""

    path: str
    type: EntryType
    mode: int
    """Permission bits (``st_mode & 0o7777``)."""
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    size: int = 0
    sha256: str | None = None
    """Files only: SHA-256 of the content, hex."""
    target: str | None = None
    """Symlinks only: the link target, as stored."""


class Manifest(msgspec.Struct, kw_only=True):
    version: int = ARCHIVE_VERSION
    created_at: float = 0.0
    server_id: str = ""
    content_digest: str = ""
    entries: list[ManifestEntry] = []


_digest_enc = msgspec.json.Encoder(order="sorted")
DIGEST_CONTEXT = b"vigil-backup-content-v1\n"


class ContentDigest:
    """SHA-256 over what the configuration *is*, fed one manifest entry at a time in
    manifest order (the archive order: parents first, components sorted), so a writer
    never holds the manifest: per entry its path, type, mode, owner, size, content hash
    and link target — not ``mtime_ns`` (a pre-command that re-exports identical data each
    run must not defeat "unchanged"), and not the archive's bytes (compression and
    encryption are randomised). The recipients are included: a new recovery key must
    produce a new full backup, not "unchanged since one it cannot open".
    """

    def __init__(self, recipients: Sequence[str] = ()) -> None:
        self._h = hashlib.sha256(DIGEST_CONTEXT)
        for r in sorted(recipients):
            self._h.update(b"r " + r.encode() + b"\n")

    def add(self, e: ManifestEntry) -> None:
        self._h.update(
            _digest_enc.encode(
                {
                    "path": e.path,
                    "type": e.type,
                    "mode": e.mode,
                    "uid": e.uid,
                    "gid": e.gid,
                    "size": e.size,
                    "sha256": e.sha256,
                    "target": e.target,
                }
            )
        )
        self._h.update(b"\n")

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def content_digest(entries: Iterable[ManifestEntry], recipients: Sequence[str] = ()) -> str:
    """``ContentDigest`` of ``entries`` in the order given (the manifest's)."""
    d = ContentDigest(recipients)
    for e in entries:
        d.add(e)
    return d.hexdigest()


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.encode(manifest)


def decode_manifest(data: bytes) -> Manifest:
    try:
        m = msgspec.json.decode(data, type=Manifest)
    except msgspec.MsgspecError as exc:
        raise AgeError(f"malformed backup manifest: {exc}") from None
    if m.version != ARCHIVE_VERSION:
        raise AgeError(f"unsupported backup archive version {m.version}")
    return m


class ArchiveResult(msgspec.Struct, kw_only=True):
    """What writing one archive produced (the envelope header is filled from it)."""

    sha256: str
    """SHA-256 of the age file's bytes (the ciphertext)."""
    size: int
    """Size of the age file."""
    content_digest: str
    files: int
    plaintext_size: int
    """Bytes of the tar stream before compression."""


class HashingWriter:
    """Counts and hashes what passes through to ``out`` (for the ciphertext's sha256/size)."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


class HashingReader:
    """Counts and hashes what is read from ``src``."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._src.readline(limit)
        self.sha256.update(data)
        self.size += len(data)
        return data

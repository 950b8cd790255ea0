"""age-encryption.org/v1 as written on ``cryptography``: interoperates with stock ``age``
both ways, and refuses every alteration."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.backup_archive import (
    CHUNK_SIZE,
    AgeError,
    AgeReader,
    AgeWriter,
    generate_identity,
    parse_identity,
    parse_recipient,
    read_identities,
    recipient_of,
)

TAG = 16


def encrypt(data: bytes, recipients: list[str]) -> bytes:
    out = io.BytesIO()
    w = AgeWriter(out, recipients)
    # uneven writes exercise the buffering
    for i in range(0, len(data), 70001):
        w.write(data[i : i + 70001])
    w.close()
    return out.getvalue()


def decrypt(blob: bytes, secret: str) -> bytes:
    return AgeReader(io.BytesIO(blob), read_identities(secret)).read()


def payload_start(blob: bytes) -> int:
    return blob.index(b"\n--- ") + blob[blob.index(b"\n--- ") + 1 :].index(b"\n") + 2 + 16


def test_keys_match_age_keygen(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    expected = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    ident = read_identities(key.read_text())[0]
    assert recipient_of(ident) == expected
    secret, recipient = generate_identity()
    assert secret.startswith("AGE-SECRET-KEY-1") and recipient.startswith("age1")
    assert recipient_of(parse_identity(secret)) == recipient
    with pytest.raises(AgeError):
        parse_recipient(recipient[:-1] + ("q" if recipient[-1] != "q" else "p"))


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE])
def test_stock_age_decrypts_ours(tmp_path: Path, size: int) -> None:
    secret, recipient = generate_identity()
    other_secret, other = generate_identity()
    data = os.urandom(size)
    blob = encrypt(data, [recipient, other])
    (tmp_path / "f.age").write_bytes(blob)
    for s in (secret, other_secret):
        (tmp_path / "key").write_text(s + "\n")
        out = subprocess.run(
            ["age", "-d", "-i", str(tmp_path / "key"), str(tmp_path / "f.age")],
            check=True,
            capture_output=True,
        ).stdout
        assert out == data
    assert decrypt(blob, secret) == data


@pytest.mark.parametrize("size", [0, CHUNK_SIZE, 2 * CHUNK_SIZE + 5])
def test_we_decrypt_stock_age(tmp_path: Path, size: int) -> None:
    secret, recipient = generate_identity()
    _, other = generate_identity()
    data = os.urandom(size)
    (tmp_path / "plain").write_bytes(data)
    subprocess.run(
        [
            "age",
            "-r",
            other,
            "-r",
            recipient,
            "-o",
            str(tmp_path / "f.age"),
            str(tmp_path / "plain"),
        ],
        check=True,
    )
    assert decrypt((tmp_path / "f.age").read_bytes(), secret) == data


def test_wrong_identity_refused() -> None:
    _, recipient = generate_identity()
    other_secret, _ = generate_identity()
    with pytest.raises(AgeError, match="no identity"):
        decrypt(encrypt(b"x", [recipient]), other_secret)


def read_in(reader: AgeReader, sizes: list[int]) -> bytes:
    """Everything ``reader`` gives, asked for in ``sizes`` bytes at a time, in turn."""
    parts = []
    while part := reader.read(sizes[len(parts) % len(sizes)]):
        parts.append(bytes(part))
    return b"".join(parts)


_SECRET, _RECIPIENT = generate_identity()
_READ_SIZES = [1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 7, 1 << 20]


@settings(max_examples=40, deadline=None)
@given(
    chunks=st.integers(0, 5),
    extra=st.integers(0, 3) | st.integers(1, CHUNK_SIZE - 1),
    sizes=st.lists(st.sampled_from(_READ_SIZES), min_size=1, max_size=4),
)
def test_any_read_sizes_give_the_plaintext(chunks: int, extra: int, sizes: list[int]) -> None:
    """Reads of a chunk or less decrypt one chunk at a time, reads of two chunks or more
    several at once (one read of the ciphertext): in any mix, the same bytes, whether the
    payload ends on a chunk boundary or not."""
    data = os.urandom(chunks * CHUNK_SIZE + extra)
    blob = encrypt(data, [_RECIPIENT])
    assert read_in(AgeReader(io.BytesIO(blob), read_identities(_SECRET)), sizes) == data


@pytest.mark.parametrize("read_size", [CHUNK_SIZE, 2 * CHUNK_SIZE, 1 << 20])
def test_alterations_refused(read_size: int) -> None:
    secret, recipient = generate_identity()
    data = os.urandom(3 * CHUNK_SIZE + 100)
    blob = encrypt(data, [recipient])
    start = payload_start(blob)
    c = CHUNK_SIZE + TAG

    flipped = bytearray(blob)
    flipped[start + c + 10] ^= 0x01
    truncated_chunk = blob[: start + 3 * c]  # last (flagged) chunk missing
    truncated_mid = blob[:-7]
    reordered = blob[:start] + blob[start + c : start + 2 * c] + blob[start : start + c]
    reordered += blob[start + 2 * c :]
    trailing = blob + b"\x00" * 32
    header = bytearray(blob)
    header[blob.index(b"X25519 ") + 10] ^= 0x02  # a stanza altered: the MAC catches it
    for bad in (bytes(flipped), truncated_chunk, truncated_mid, reordered, trailing, bytes(header)):
        with pytest.raises(AgeError):
            read_in(AgeReader(io.BytesIO(bad), read_identities(secret)), [read_size])
    assert read_in(AgeReader(io.BytesIO(blob), read_identities(secret)), [read_size]) == data
    assert decrypt(blob, secret) == data


def test_truncated_header_refused() -> None:
    secret, recipient = generate_identity()
    blob = encrypt(b"hello", [recipient])
    for cut in (5, 30, blob.index(b"\n--- ")):
        with pytest.raises(AgeError):
            decrypt(blob[:cut], secret)

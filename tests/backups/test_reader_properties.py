"""Property-based tests of what ``vigil-backup`` reads from a collector it cannot trust: the
envelope decoder, the signed recipient list, and the archive reader (age -> zstd -> tar).

Whatever the input: a clean refusal (``EnvelopeError`` / ``RecipientListError`` /
``ArchiveRefused``) or a correct result, never another exception, never a hang, never a
byte written outside the target directory or beyond the signed plaintext size.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import backup_envelope, recipient_list
from protocol.backup_archive import AgeWriter, ManifestEntry, read_identities
from recovery.extract import ArchiveRefused, read_archive
from tests.backups.test_malicious import RECIPIENT, SECRET, craft, member

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IDS = read_identities(SECRET)
AGENT = Ed25519PrivateKey.generate()
AGENT_PUB = AGENT.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
EVIL_NAME = "vigil-prop-evil"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


def _valid_envelope() -> bytes:
    header = backup_envelope.BackupHeader(
        server_id="srv-1",
        seq=3,
        created_at=1.0,
        ciphertext_sha256="a" * 64,
        ciphertext_size=10,
        content_digest="b" * 64,
        recipients=[RECIPIENT],
        plaintext_size=10,
    )
    return backup_envelope.encode(backup_envelope.sign(header, AGENT))


VALID_ENVELOPE = _valid_envelope()


def _decode_and_verify(data: bytes) -> None:
    try:
        env = backup_envelope.decode(data)
        backup_envelope.verify(env, AGENT_PUB)
    except backup_envelope.EnvelopeError:
        return


@SETTINGS
@given(st.binary(max_size=2048))
def test_envelope_decoder_random_bytes(data: bytes) -> None:
    _decode_and_verify(data)


@SETTINGS
@given(json_values, json_values)
def test_envelope_decoder_random_json(header: object, signature: object) -> None:
    _decode_and_verify(json.dumps({"header": header, "signature": signature}).encode())


@SETTINGS
@given(st.data())
def test_envelope_decoder_mutated(data: st.DataObject) -> None:
    blob = bytearray(VALID_ENVELOPE)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    try:
        header = backup_envelope.verify(backup_envelope.decode(bytes(blob)), AGENT_PUB)
    except backup_envelope.EnvelopeError:
        return
    # a mutation that still verifies can only be one the canonical form does not see
    assert backup_envelope.canonical(header) == backup_envelope.canonical(
        backup_envelope.decode(VALID_ENVELOPE).header
    )


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=600)), json_values)
def test_recipient_list_decoder(tail: str | bytes, body: object) -> None:
    candidates = [
        tail if isinstance(tail, str) else tail.decode("latin-1"),
        recipient_list.PREFIX + (tail if isinstance(tail, str) else tail.decode("latin-1")),
        recipient_list.PREFIX
        + base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("="),
    ]
    for text in candidates:
        try:
            recipient_list.verify(text, "0" * 64)
        except recipient_list.RecipientListError:
            pass


# --- archive reader -------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes | str | None]:
    """Every path below ``root`` with its content (files), target (links) or None."""
    out: dict[str, bytes | str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = None
    return out


def _read_into_sandbox(
    blob: bytes, max_plaintext: int | None = None
) -> tuple[dict[str, bytes | str | None], Path | None]:
    """Read ``blob`` into a fresh target beside a sentinel directory; check that only a
    clean refusal can come out and nothing outside the target changed."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sentinel").mkdir()
        (root / "sentinel" / "keep").write_bytes(b"untouched")
        dest = root / "parent" / "dest"
        dest.mkdir(parents=True)
        outside_before = {k: v for k, v in _tree(root).items() if not k.startswith("parent/dest")}
        ok = True
        try:
            read_archive(
                io.BytesIO(blob),
                IDS,
                recipients=[RECIPIENT],
                dest=dest,
                max_plaintext=max_plaintext,
            )
        except ArchiveRefused:
            ok = False
        outside_after = {k: v for k, v in _tree(root).items() if not k.startswith("parent/dest")}
        assert outside_after == outside_before
        assert not Path("/" + EVIL_NAME).exists()
        written = _tree(dest)
        for rel, value in written.items():
            p = dest / rel
            if isinstance(value, str):  # a symlink: it must resolve inside the target
                real = os.path.realpath(p)  # loops stay unresolved, inside
                assert real == str(dest.resolve()) or real.startswith(str(dest.resolve()) + "/")
        return written, (dest if ok else None)


PLAIN_NAMES = ["a", "b", "a/b", "a/b/c", "b/a", "etc", "etc/a", "a/x y"]
BAD_NAMES = ["../" + EVIL_NAME, "a/../../" + EVIL_NAME, "/" + EVIL_NAME, "./a", ".vigil/x", "a//b"]
NAMES = st.sampled_from(PLAIN_NAMES * 4 + BAD_NAMES)
TYPES = st.sampled_from(
    [tarfile.REGTYPE] * 6
    + [tarfile.DIRTYPE] * 4
    + [tarfile.SYMTYPE] * 3
    + [tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)
TARGETS = st.sampled_from(
    ["a", "b", "c", "x y", "../a", "a/b"] * 3
    + ["../../" + EVIL_NAME, "/etc/passwd", "b/../..", "", "."]
)
MEMBERS = st.lists(st.tuples(NAMES, TYPES, TARGETS, st.binary(max_size=64)), min_size=0, max_size=8)


@SETTINGS
@given(MEMBERS, st.booleans(), st.integers(0, 3))
def test_archive_reader_random_members(members, manifest: bool, damage: int) -> None:
    def add(t: tarfile.TarFile) -> list[ManifestEntry]:
        entries = []
        for name, type_, target, data in members:
            entries.append(member(t, name, type_, data=data, link=target))
        if damage == 1 and entries:
            entries[0].mode ^= 0o100  # the manifest lies about metadata
        elif damage == 2 and entries:
            entries.pop()  # a member the manifest does not list
        return entries

    written, ok = _read_into_sandbox(craft(add, manifest=manifest))
    if ok is not None:
        # only what a truthful, safe archive holds: every name inside, nothing else
        for rel in written:
            assert ".." not in rel.split("/") and not rel.startswith(".vigil")


VALID = craft(
    lambda t: [
        member(t, "etc", tarfile.DIRTYPE),
        member(t, "etc/a.conf", data=b"a = 1\n" * 100),
        member(t, "etc/l", tarfile.SYMTYPE, link="a.conf"),
    ]
)


@SETTINGS
@given(st.data())
def test_archive_reader_mutated_ciphertext(data: st.DataObject) -> None:
    blob = bytearray(VALID)
    how = data.draw(st.sampled_from(["flip", "truncate", "append", "splice"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        del blob[data.draw(st.integers(0, len(blob) - 1)) :]
    elif how == "append":
        blob += data.draw(st.binary(min_size=1, max_size=200))
    else:
        i = data.draw(st.integers(0, len(blob)))
        blob[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    written, ok = _read_into_sandbox(bytes(blob))
    if bytes(blob) != VALID:  # flips may cancel out
        assert ok is None and written == {}


@SETTINGS
@given(st.binary(max_size=4096))
def test_archive_reader_random_plaintext(plain: bytes) -> None:
    """Random bytes as the tar+zstd layer (encrypted properly: the collector can encrypt
    anything to the partner's public recipient)."""
    for layer in (plain, zstandard.ZstdCompressor().compress(plain)):
        out = io.BytesIO()
        w = AgeWriter(out, [RECIPIENT])
        w.write(layer)
        w.close()
        _read_into_sandbox(out.getvalue())


def test_restore_stops_at_the_signed_plaintext_size() -> None:
    """A decompression bomb (a 64 MiB file of zeros, a few KiB compressed): the reader stops
    at the signed size and writes no more than that."""
    size = 64 << 20
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("zeros")
        ti.size = size
        tar.addfile(ti, io.BytesIO(bytes(size)))
    out = io.BytesIO()
    w = AgeWriter(out, [RECIPIENT])
    w.write(zstandard.ZstdCompressor().compress(raw.getvalue()))
    w.close()
    limit = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp)
        with pytest.raises(ArchiveRefused, match="signed plaintext size"):
            read_archive(
                io.BytesIO(out.getvalue()),
                IDS,
                recipients=[RECIPIENT],
                dest=dest,
                max_plaintext=limit,
            )
        assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= limit


def test_exactly_the_signed_size_is_accepted(tmp_path: Path) -> None:
    from protocol.backup_archive import AgeReader

    plain = zstandard.ZstdDecompressor().stream_reader(AgeReader(io.BytesIO(VALID), IDS)).read()
    result = read_archive(
        io.BytesIO(VALID), IDS, recipients=[RECIPIENT], dest=tmp_path, max_plaintext=len(plain)
    )
    assert (tmp_path / "etc" / "a.conf").read_bytes() == b"a = 1\n" * 100
    assert result.plaintext_size <= len(plain)
    with pytest.raises(ArchiveRefused, match="signed plaintext size"):
        read_archive(io.BytesIO(VALID), IDS, recipients=[RECIPIENT], max_plaintext=len(plain) - 1)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_an_oversized_extended_header_is_refused_before_it_is_read(fmt: int) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        ti = tarfile.TarInfo("a" * (2 << 20) if fmt == tarfile.GNU_FORMAT else "a")
        if fmt == tarfile.PAX_FORMAT:
            ti.pax_headers = {"comment": "x" * (2 << 20)}
        tar.addfile(ti, io.BytesIO(b""))
    out = io.BytesIO()
    w = AgeWriter(out, [RECIPIENT])
    w.write(zstandard.ZstdCompressor().compress(raw.getvalue()))
    w.close()
    with pytest.raises(ArchiveRefused, match="extended tar header"):
        read_archive(io.BytesIO(out.getvalue()), IDS, recipients=[RECIPIENT])

"""The agent's keys on libsodium agree with ``cryptography`` byte for byte: the key file,
signatures, the X25519 exchange and the session key's HKDF."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.agent_key import AgentKey, EphemeralX25519
from protocol import request_auth as ra


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=256))
def test_key_file_and_signatures_match_cryptography(seed: bytes, message: bytes) -> None:
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    ours = AgentKey(seed)
    assert ours.to_pem() == _pem(theirs)
    assert AgentKey.from_pem(_pem(theirs)).private_bytes_raw() == seed
    assert ours.public_bytes_raw() == theirs.public_key().public_bytes_raw()
    assert ours.sign(message) == theirs.sign(message)  # Ed25519 is deterministic
    theirs.public_key().verify(ours.sign(message), message)


def test_key_file_with_other_line_breaks_is_read() -> None:
    theirs = Ed25519PrivateKey.generate()
    pem = _pem(theirs).replace(b"\n", b"\r\n")
    assert AgentKey.from_pem(pem).private_bytes_raw() == theirs.private_bytes_raw()


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        _pem(Ed25519PrivateKey.generate()).replace(b"MC4CAQAw", b"MC4CAQEw"),
        Ed25519PrivateKey.generate().private_bytes(  # encrypted: the agent has no password
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
        X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
)
def test_anything_else_is_a_value_error(pem: bytes) -> None:
    with pytest.raises(ValueError):
        AgentKey.from_pem(pem)


@settings(max_examples=25, deadline=None)
@given(
    ikm=st.binary(min_size=32, max_size=32),
    session_id=st.text(max_size=40),
    server_id=st.text(max_size=40),
)
def test_session_key_hkdf_matches_cryptography(ikm: bytes, session_id: str, server_id: str) -> None:
    expected = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=session_id.encode(),
        info=b"vigil-session-key-v1|" + server_id.encode(),
    ).derive(ikm)
    assert ra.session_key(ikm, session_id, server_id) == expected


def test_agent_and_collector_derive_the_same_session_key() -> None:
    agent = EphemeralX25519()
    collector = X25519PrivateKey.generate()
    shared = agent.exchange(collector.public_key().public_bytes_raw())
    assert shared == collector.exchange(X25519PublicKey.from_public_bytes(agent.public_bytes_raw()))
    mine = ra.session_key(shared, "ses_1", "srv_1")
    assert mine == ra.derive_session_key(collector, agent.public_bytes_raw(), "ses_1", "srv_1")


@pytest.mark.parametrize("peer", [bytes(32), b"\x01" + bytes(31), b"short"])
def test_low_order_or_malformed_peer_keys_are_refused(peer: bytes) -> None:
    with pytest.raises(ValueError):
        EphemeralX25519().exchange(peer)

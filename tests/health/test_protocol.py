"""Compatibility within protocol version 1, both ways, and the signing primitives."""

from __future__ import annotations

import json

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol import request_auth as ra
from protocol.messages import AgentSettings, ReportAck, SessionResponse, decode, encode


def test_an_agent_reads_a_newer_collectors_answers() -> None:
    """Fields a newer collector adds are ignored by this agent."""
    newer = {
        "protocol": 1,
        "session_id": "ses_1",
        "ephemeral_key": "a" * 44,
        "expires_at": 1.0,
        "server_time": 2.0,
        "settings": {"report_interval_s": 30, "firmware_push": True},
        "quota": {"reports": 10},
    }
    resp = decode(json.dumps(newer).encode(), SessionResponse)
    assert resp.settings.report_interval_s == 30


def test_an_agent_reads_an_older_collectors_answers() -> None:
    """Fields an older collector does not send take their defaults."""
    ack = decode(b'{"accepted": ["r1"]}', ReportAck)
    assert ack.duplicates == [] and ack.settings == AgentSettings()
    assert ack.settings.monitoring_entitled and ack.settings.backup_interval_s == 0


def test_settings_are_always_sent_whole() -> None:
    doc = json.loads(encode(AgentSettings()))
    assert doc["report_interval_s"] == 60 and doc["monitoring_entitled"] is True


def test_wrong_types_name_their_field() -> None:
    with pytest.raises(msgspec.ValidationError) as err:
        decode(b'{"accepted": "r1"}', ReportAck)
    assert "$.accepted" in str(err.value)


def test_both_sides_derive_the_same_session_key_and_only_it_verifies() -> None:
    agent, collector = X25519PrivateKey.generate(), X25519PrivateKey.generate()

    def pub(k: X25519PrivateKey) -> bytes:
        return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    k1 = ra.derive_session_key(agent, pub(collector), "ses_1", "srv_1")
    k2 = ra.derive_session_key(collector, pub(agent), "ses_1", "srv_1")
    assert k1 == k2 and len(k1) == 32
    assert ra.derive_session_key(agent, pub(collector), "ses_2", "srv_1") != k1
    sig = ra.sign_request(k1, "POST", "/api/v1/agent/reports", "1.0", "n" * 32, b"{}")
    assert ra.verify_request(k2, "POST", "/api/v1/agent/reports", "1.0", "n" * 32, b"{}", sig)
    for args in (
        ("GET", "/api/v1/agent/reports", "1.0", "n" * 32, b"{}"),
        ("POST", "/api/v1/agent/reports?x=1", "1.0", "n" * 32, b"{}"),
        ("POST", "/api/v1/agent/reports", "2.0", "n" * 32, b"{}"),
        ("POST", "/api/v1/agent/reports", "1.0", "m" * 32, b"{}"),
        ("POST", "/api/v1/agent/reports", "1.0", "n" * 32, b"{ }"),
    ):
        assert not ra.verify_request(k2, *args, sig)

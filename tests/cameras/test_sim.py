"""The simulator itself: CLI, fault specifications, token and Digest checks."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
from lxml import etree

from sim import digest
from sim.faults import FaultSpecError, parse_faults
from sim.identity import MODELS, identity_for
from sim.wsse import WSSE_NS, WSU_NS, NonceCache, check_username_token


def test_cli_prints_json_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "cameras",
            "--count",
            "3",
            "--faults",
            "1:offline,2:clock=60",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        doc = json.loads(proc.stdout.readline())
        cams = doc["cameras"]
        assert [c["faults"] for c in cams] == [[], ["offline"], ["clock=60"]]
        assert all(c["host"] == "127.0.0.1" and c["port"] > 0 for c in cams)
        assert cams[0]["onvif_url"] == f"onvif://admin:vigil-sim@127.0.0.1:{cams[0]['port']}"
        assert len({c["port"] for c in cams} | {c["rtsp_port"] for c in cams}) == 6
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_cli_rejects_a_bad_fault_spec():
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "cameras", "--count", "2", "--faults", "5:offline"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "out of range" in proc.stderr


def test_fault_specs():
    plan = parse_faults("0:offline, 1-2:slow=0.5, *:clock=-30, 3:stream_down", 4)
    assert plan.for_index(0).offline and plan.for_index(0).clock_offset_s == -30
    assert plan.for_index(2).slow_s == 0.5 and plan.for_index(3).stream_down
    assert parse_faults("1:slow", 2).for_index(1).slow_s == 2.0
    assert parse_faults({1: ["garbage", "clock"]}, 2).for_index(1).clock_offset_s == 3600
    for bad in ("0:nope", "x:offline", "0", "0:offline=1", "0:slow=abc", "9:offline"):
        with pytest.raises(FaultSpecError):
            parse_faults(bad, 4)


def test_identities_are_deterministic_and_some_share_a_model_line():
    assert identity_for(7) == identity_for(7)
    serials = {identity_for(i).serial for i in range(256)}
    assert len(serials) == 256
    same_model = [identity_for(i) for i in range(0, 40, len(MODELS))]
    assert len({i.firmware for i in same_model}) == 2  # an older firmware line shows


def _token(password, created, nonce=b"0123456789abcdef", digest_password=None):
    created_text = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    pw = base64.b64encode(
        hashlib.sha1(
            nonce + created_text.encode() + (digest_password or password).encode()
        ).digest()
    ).decode()
    return etree.fromstring(
        f'<e xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}"><wsse:UsernameToken>'
        "<wsse:Username>admin</wsse:Username>"
        f'<wsse:Password Type="x#PasswordDigest">{pw}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created_text}</wsu:Created></wsse:UsernameToken></e>"
    )


def test_username_token_checks():
    now = dt.datetime.now(dt.UTC)
    nonces = NonceCache()
    assert check_username_token(_token("pw", now), "admin", "pw", now, 10, nonces) is None
    assert (
        check_username_token(_token("pw", now), "admin", "pw", now, 10, nonces) == "nonce replayed"
    )
    fresh = NonceCache()
    assert (
        check_username_token(_token("bad", now), "admin", "pw", now, 10, fresh) == "wrong password"
    )
    skewed_camera = now + dt.timedelta(hours=1)
    why = check_username_token(_token("pw", now), "admin", "pw", skewed_camera, 10, fresh)
    assert why and "away from the camera's clock" in why
    empty = etree.fromstring("<e/>")
    assert (
        check_username_token(empty, "admin", "pw", now, 10, fresh) == "no WS-Security UsernameToken"
    )


def test_digest_auth_round_trip():
    from agent.cameras.rtsp import authorization

    nonce, challenge = digest.challenge("cam", qop=True)
    header = authorization(
        challenge.split(" ", 1)[0] + " " + challenge.split(" ", 1)[1], "GET", "/x", "u", "p"
    )
    assert digest.verify(header, "GET", "u", "p", "cam", {nonce})
    assert not digest.verify(header, "GET", "u", "wrong", "cam", {nonce})
    nonce, challenge = digest.challenge("cam", qop=False)
    header = authorization(challenge, "DESCRIBE", "rtsp://h/s", "u", "p")
    assert digest.verify(header, "DESCRIBE", "u", "p", "cam", {nonce})
    assert not digest.verify(header, "DESCRIBE", "u", "p", "cam", {"other"})
    assert os.environ.get("VIGIL_NEVER_SET") is None


def test_cli_writes_an_agent_config_the_agent_accepts(tmp_path):
    import tomllib

    from agent.cameras import parse_camera_config

    target = tmp_path / "cameras.toml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.cli",
            "cameras",
            "--count",
            "2",
            "--json",
            "--write-agent-config",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        doc = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    table = tomllib.loads(target.read_text())["cameras"]
    settings = parse_camera_config(table, str(tmp_path / "agent.toml"))
    assert [(d.address, d.port) for d in settings.devices] == [
        (c["host"], c["port"]) for c in doc["cameras"]
    ]
    assert settings.devices[0].credentials.password == "vigil-sim"
    assert (tmp_path / "camera-credentials.toml").stat().st_mode & 0o777 == 0o600

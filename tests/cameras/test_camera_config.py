"""The [cameras] table and the credentials file."""

from __future__ import annotations

import os
import tomllib

import pytest

from agent.cameras import CameraConfigError, parse_camera_config
from cameras.support import write_credentials

AGENT_TOML = """
[agent]
state_dir = "/var/lib/vigil-agent"

[cameras]
credentials_file = "camera-credentials.toml"
concurrency = 16
timeout_s = 4
clock_threshold_s = 2.5
flap_threshold = 3
snapshot = true
discovery = true
discovery_interfaces = ["lo"]
discovery_targets = ["127.0.0.1:3702"]

[[cameras.device]]
address = "10.0.0.7"
name = "Entrance"
site = "Building A"

[[cameras.device]]
address = "cam-yard.local"
port = 8080
credentials = "yard"
id = "yard"
"""


def _parse(tmp_path, table=None, text=AGENT_TOML):
    config = tmp_path / "agent.toml"
    config.write_text(text)
    if table is None:
        table = tomllib.loads(text)["cameras"]
    return parse_camera_config(table, str(config))


def test_a_full_table(tmp_path):
    write_credentials(tmp_path, extra='[yard]\nusername = "viewer"\npassword = "p w"\n')
    settings = _parse(tmp_path)
    assert (settings.concurrency, settings.timeout_s, settings.clock_threshold_s) == (16, 4, 2.5)
    assert settings.flap_threshold == 3 and settings.snapshot is True
    assert settings.credentials_file == tmp_path / "camera-credentials.toml"
    assert settings.discovery.enabled and settings.discovery.interfaces == ("lo",)
    assert settings.discovery.targets == (("127.0.0.1", 3702),)
    first, yard = settings.devices
    assert (first.key, first.port, first.name, first.site) == (
        "10.0.0.7:80",
        80,
        "Entrance",
        "Building A",
    )
    assert first.credentials.username == "admin"
    assert (yard.key, yard.port, yard.credentials.username, yard.credentials.password) == (
        "yard",
        8080,
        "viewer",
        "p w",
    )
    assert "p w" not in repr(yard)  # passwords stay out of logs


def test_default_key_is_made_valid(tmp_path):
    write_credentials(tmp_path)
    table = {"credentials_file": "camera-credentials.toml", "device": [{"address": "fe80::1%eth0"}]}
    settings = parse_camera_config(table, str(tmp_path / "agent.toml"))
    assert settings.devices[0].key == "fe80::1_eth0:80"


def test_defaults(tmp_path):
    settings = parse_camera_config({}, str(tmp_path / "agent.toml"))
    assert (settings.concurrency, settings.timeout_s, settings.clock_threshold_s) == (32, 10, 5)
    assert (settings.flap_threshold, settings.snapshot, settings.devices) == (2, False, ())
    assert settings.discovery.enabled is False


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_credentials_file_readable_by_others_is_refused(tmp_path, mode):
    path = write_credentials(tmp_path, mode=mode)
    with pytest.raises(CameraConfigError) as err:
        _parse(tmp_path, text=AGENT_TOML.replace('credentials = "yard"', ""))
    assert err.value.key == "cameras.credentials_file"
    assert f"{mode:04o}" in str(err.value) and f"chmod 600 {path}" in str(err.value)


def test_credentials_file_0400_is_accepted(tmp_path):
    write_credentials(tmp_path, mode=0o400)
    settings = _parse(tmp_path, text=AGENT_TOML.replace('credentials = "yard"', ""))
    assert len(settings.devices) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_credentials_file_of_another_user_is_refused(tmp_path):
    path = write_credentials(tmp_path)
    os.chown(path, 4242, 4242)
    with pytest.raises(CameraConfigError, match="owned by uid 4242"):
        _parse(tmp_path, text=AGENT_TOML.replace('credentials = "yard"', ""))


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"concurrency": 0}, "cameras.concurrency", "an integer 1-1024"),
        ({"timeout_s": "10"}, "cameras.timeout_s", "a number of seconds"),
        ({"flap_threshold": 1.5}, "cameras.flap_threshold", "an integer"),
        ({"snapshot": "yes"}, "cameras.snapshot", "true or false"),
        ({"timout_s": 3}, "cameras.timout_s", "one of"),
        ({"discovery": True}, "cameras.discovery_interfaces", "at least one interface"),
        ({"discovery_targets": ["nohost:x"]}, "cameras.discovery_targets[0]", "HOST:PORT"),
        ({"device": {"address": "1.2.3.4"}}, "cameras.device", "an array of tables"),
        ({"device": [{"port": 80}]}, "cameras.device[0].address", "an IP address or host"),
        ({"device": [{"address": "1.2.3.4", "port": 70000}]}, "cameras.device[0].port", "1-65535"),
        ({"device": [{"address": "a b"}]}, "cameras.device[0].address", "an IP address"),
        (
            {"device": [{"address": "1.2.3.4", "password": "x"}]},
            "cameras.device[0].password",
            "no credentials here",
        ),
        (
            {"device": [{"address": "1.2.3.4", "credentials": "nope"}]},
            "cameras.device[0].credentials",
            "it has: default",
        ),
        (
            {"device": [{"address": "1.2.3.4", "id": "bad key!"}]},
            "cameras.device[0].id",
            "letters, digits",
        ),
        (
            {"device": [{"address": "1.2.3.4"}, {"address": "1.2.3.4"}]},
            "cameras.device[1].address",
            "not already configured",
        ),
        ({"device": [{"address": "1.2.3.4", "ip": "x"}]}, "cameras.device[0].ip", "one of"),
    ],
)
def test_config_errors_name_the_key_and_what_is_expected(tmp_path, change, key, expected):
    write_credentials(tmp_path)
    table = {"credentials_file": "camera-credentials.toml", **change}
    with pytest.raises(CameraConfigError) as err:
        parse_camera_config(table, str(tmp_path / "agent.toml"))
    assert err.value.key == key
    assert expected in err.value.expected
    assert str(tmp_path / "agent.toml") in str(err.value) and key in str(err.value)


def test_devices_without_a_credentials_file(tmp_path):
    with pytest.raises(CameraConfigError) as err:
        parse_camera_config({"device": [{"address": "1.2.3.4"}]}, str(tmp_path / "agent.toml"))
    assert err.value.key == "cameras.credentials_file"


def test_missing_and_malformed_credentials_file(tmp_path):
    table = {"credentials_file": "nope.toml", "device": [{"address": "1.2.3.4"}]}
    with pytest.raises(CameraConfigError, match="does not exist"):
        parse_camera_config(table, str(tmp_path / "agent.toml"))
    bad = tmp_path / "nope.toml"
    bad.write_text("[default]\nusername = 1\n")
    bad.chmod(0o600)
    with pytest.raises(CameraConfigError, match="username and password"):
        parse_camera_config(table, str(tmp_path / "agent.toml"))
    bad.write_text("this is not toml")
    with pytest.raises(CameraConfigError, match="a TOML file"):
        parse_camera_config(table, str(tmp_path / "agent.toml"))

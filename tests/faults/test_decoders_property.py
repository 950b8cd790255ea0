"""Property-based tests of the agent's decoders of outside input: its configuration file
(whatever it holds: a clear ``AgentConfigError``, never a traceback) and what a camera
answers to ONVIF (whatever it answers: a verdict, never an exception)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cameras.probe import Prober, Target
from agent.cameras.verdict import judge
from agent.config import AgentConfig, AgentConfigError, load, parse
from sim.fleet import SimulatedFleet

# --- the configuration file ----------------------------------------------------------------

KNOWN_KEYS = {
    "agent": [
        "state_dir",
        "licence_id",
        "machine_id",
        "hostname",
        "log_level",
        "retry_max_s",
        "refused_check_s",
    ],
    "report": ["interval_s", "recording_volumes", "ignore_fstypes"],
    "spool": ["max_bytes"],
    "software": [
        "product",
        "version",
        "version_file",
        "version_command",
        "version_regex",
        "modules",
    ],
    "cameras": [
        "credentials_file",
        "concurrency",
        "timeout_s",
        "clock_threshold_s",
        "flap_threshold",
        "snapshot",
        "inventory_every",
        "firmware_check",
        "discovery",
        "discovery_interfaces",
        "discovery_targets",
        "discovery_timeout_s",
        "device",
    ],
    "backup": ["paths", "exclude", "pre_command", "pre_command_timeout"],
}
DEVICE_KEYS = ["address", "port", "credentials", "name", "site", "id"]

# Every value TOML can hold.
scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "info", "debug", "/tmp", "127.0.0.1", "a:b", "[", "(?P<"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def table(draw: Any, name: str) -> dict[str, Any]:
    keys = KNOWN_KEYS[name]
    out = {k: draw(values) for k in draw(st.lists(st.sampled_from(keys), max_size=5, unique=True))}
    if name == "cameras" and draw(st.booleans()):
        devices = st.dictionaries(st.sampled_from(DEVICE_KEYS), values, max_size=6)
        out["device"] = draw(st.lists(devices, max_size=3))
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.text(max_size=8))] = draw(values)
    return out


@st.composite
def documents(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(KNOWN_KEYS)), max_size=6, unique=True))
    doc: dict[str, Any] = {n: draw(table(n)) for n in names}
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(max_size=8))] = draw(values)
    if draw(st.integers(0, 9)) == 0 and names:
        doc[names[0]] = draw(values)  # a table that is not a table
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_any_configuration_values_give_a_config_or_a_clear_error(doc: dict[str, Any]) -> None:
    try:
        cfg = parse(doc, "/etc/vigil/agent.toml")
    except AgentConfigError as exc:
        assert str(exc).startswith("/etc/vigil/agent.toml: ")
        assert exc.key and exc.expected
    else:
        assert isinstance(cfg, AgentConfig)


VALID = b"""[agent]
state_dir = "/var/lib/vigil-agent"
retry_max_s = 30
log_level = "info"

[report]
interval_s = 60
recording_volumes = ["/srv/video"]

[spool]
max_bytes = 1048576

[software]
product = "VMS"
version_command = ["vms", "--version"]
version_regex = "([0-9.]+)"
"""


@st.composite
def mutated_files(draw: Any) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "flip", "text"]))
        if kind == "insert":
            data[at:at] = draw(st.binary(max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = draw(
                st.text(alphabet=string.printable + "é\u2028\x00", max_size=10)
            ).encode()
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(content=st.one_of(mutated_files(), st.binary(max_size=200)))
def test_any_configuration_file_gives_a_config_or_a_clear_error(
    tmp_path_factory: Any, content: bytes
) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "agent.toml"
    path.write_bytes(content)
    try:
        cfg = load(path)
    except AgentConfigError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert isinstance(cfg, AgentConfig)


# --- what a camera answers ---------------------------------------------------------------

VERDICTS = {"ok", "degraded", "auth_failed", "unreachable", "error", "stream_down", "no_media"}

mutation = st.tuples(
    st.sampled_from(["none", "truncate", "flip", "insert", "delete", "text", "status"]),
    st.floats(min_value=0, max_value=1),
    st.binary(max_size=24) | st.text(max_size=24).map(str.encode),
    st.sampled_from([200, 400, 401, 500]),
)
_TEXT = re.compile(rb">([^<]*)<")


def mutate(status: int, body: bytes, how: tuple[str, float, bytes, int]) -> tuple[int, bytes]:
    kind, where, data, new_status = how
    at = int(where * len(body))
    if kind == "truncate":
        return status, body[:at]
    if kind == "flip" and body:
        at = min(at, len(body) - 1)
        return status, body[:at] + bytes([body[at] ^ (data[0] if data else 0xFF)]) + body[at + 1 :]
    if kind == "insert":
        return status, body[:at] + data + body[at:]
    if kind == "delete":
        return status, body[:at] + body[at + 1 + len(data) :]
    if kind == "text":  # an element's text replaced: a number becomes words, a date nonsense
        spans = list(_TEXT.finditer(body))
        if spans:
            m = spans[at % len(spans)]
            return status, body[: m.start(1)] + data + body[m.end(1) :]
    if kind == "status":
        return new_status, body
    return status, body


def test_onvif_prober_gives_a_verdict_whatever_the_camera_answers() -> None:
    """A simulated camera over HTTP on 127.0.0.1 whose every SOAP answer is mutated."""
    with asyncio.Runner() as runner:
        fleet = SimulatedFleet(1)
        runner.run(fleet.start())
        prober = Prober(timeout_s=2.0, snapshot=True)
        original = fleet._answer
        examples = itertools.count()
        try:

            @settings(max_examples=50, deadline=None)
            @given(plan=st.lists(mutation, min_size=1, max_size=8))
            def probe_once(plan: list[tuple[str, float, bytes, int]]) -> None:
                calls = itertools.count()

                def answer(camera: Any, service: str, body: bytes) -> tuple[int, bytes]:
                    status, payload = original(camera, service, body)
                    return mutate(status, payload, plan[next(calls) % len(plan)])

                fleet._answer = answer  # type: ignore[method-assign]
                cam = fleet.cameras[0]
                target = Target(
                    f"cam{next(examples)}", cam.host, cam.port, cam.username, cam.password
                )
                result = runner.run(prober.probe(target))
                verdict, reasons = judge(result, 5.0)
                assert verdict in VERDICTS, (verdict, result)
                assert all(isinstance(r, str) and r for r in reasons)
                assert verdict == "ok" or reasons, (verdict, result)

            probe_once()
            assert sum(fleet.cameras[0].requests.values()) >= 50  # every example reached it
        finally:
            fleet._answer = original  # type: ignore[method-assign]
            runner.run(prober.close())
            runner.run(fleet.stop())

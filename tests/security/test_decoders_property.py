"""Every decoder of outside input, fed random input: a clear refusal or a bounded value.

Properties (hypothesis):

- each protocol message the wire carries, decoded from random bytes, from random JSON and
  from a valid message with one field replaced by a random value, either decodes to a
  message whose numbers are in range or raises msgspec's own error (never another
  exception); through the collector's body parser it is a 4xx ``ApiError``;
- the backup run record and the backup envelope likewise;
- the collector's configuration file, random TOML or random bytes, loads or raises
  ``ConfigError`` naming the key, never another exception;

plus one over-the-wire fuzz test: a few hundred random bodies and headers sent to a real
collector's agent and partner endpoints, no 500, and the collector still healthy.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import string
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.backups.config import backup_config
from collector.backups.errors import BackupRefused
from collector.backups.handlers import api_error
from collector.backups.service import BackupRun, BackupService
from collector.config import ConfigError, load_config
from collector.http.bodies import parse
from collector.http.errors import ApiError
from harness.net import http
from harness.processes import BIN, Collector
from harness.signed import report, session_for, signed_headers
from protocol import backup_envelope as be
from protocol import limits
from protocol import messages as m

PROPS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

WIRE_TYPES = [
    m.EnrollRequest,
    m.EnrollResponse,
    m.SessionRequest,
    m.SessionResponse,
    m.AgentSettings,
    m.ReportBatch,
    m.Report,
    m.ReportAck,
    m.ErrorBody,
    BackupRun,
    be.Envelope,
]

VALID: dict[type, dict[str, Any]] = {
    m.EnrollRequest: {
        "protocol": 1,
        "token": "vgl_enr_x",
        "public_key": "A" * 44,
        "hostname": "rec-01",
        "machine_id": "abc",
    },
    m.SessionRequest: {
        "protocol": 1,
        "server_id": "srv-1",
        "timestamp": 1_800_000_000.0,
        "nonce": "0" * 32,
        "ephemeral_key": "A" * 44,
    },
    m.ReportBatch: {
        "protocol": 1,
        "reports": [
            report(
                1,
                cameras=[{"key": "c1", "address": "10.0.0.1", "verdict": "ok", "port": 80}],
                software={"product": "VMS", "version": "5"},
            )
        ],
    },
    be.Envelope: {
        "header": {
            "kind": "full",
            "server_id": "srv-1",
            "seq": 3,
            "created_at": 1_800_000_000.0,
            "ciphertext_sha256": "0" * 64,
            "ciphertext_size": 1000,
            "files": 4,
        },
        "signature": "AAAA",
    },
    BackupRun: {"outcome": "ok", "started_at": 1.0, "finished_at": 2.0, "seq": 1, "bytes": 10},
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([2**63, 2**63 - 1, -1, 1e308, -1e308, 253402300800.0, 1e-320])
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def numbers_in(value: object) -> list[float | int]:
    """Every number in a decoded message, however deep."""
    out: list[float | int] = []
    if isinstance(value, bool):
        return out
    if isinstance(value, int | float):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            out += numbers_in(v)
    elif isinstance(value, list):
        for v in value:
            out += numbers_in(v)
    return out


def decode_any(data: bytes, type_: type) -> object:
    if type_ is be.Envelope:
        try:
            return be.decode(data)
        except be.EnvelopeError:
            raise msgspec.DecodeError("envelope") from None
    return m.decode(data, type_)


def assert_decodes_or_refuses(data: bytes, type_: type) -> None:
    try:
        msg = decode_any(data, type_)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    for n in numbers_in(msgspec.to_builtins(msg)):
        if isinstance(n, float):
            assert math.isfinite(n), (type_, n)
        else:
            assert -(2**63) <= n <= limits.MAX_INT, (type_, n)


@PROPS
@given(type_=st.sampled_from(WIRE_TYPES), data=st.binary(max_size=300))
def test_random_bytes_decode_or_are_refused(type_: type, data: bytes) -> None:
    assert_decodes_or_refuses(data, type_)


@PROPS
@given(type_=st.sampled_from(WIRE_TYPES), value=json_values)
def test_random_json_decodes_or_is_refused(type_: type, value: object) -> None:
    assert_decodes_or_refuses(json.dumps(value).encode(), type_)


def paths_of(value: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_of(v, (*prefix, i))
    return out


def replaced(doc: object, path: tuple, new: object) -> object:
    if not path:
        return new
    copy = json.loads(json.dumps(doc))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


@PROPS
@given(type_=st.sampled_from(list(VALID)), pick=st.randoms(use_true_random=False), new=json_values)
def test_one_field_replaced_by_a_random_value(
    type_: type, pick: random.Random, new: object
) -> None:
    doc = VALID[type_]
    path = pick.choice(paths_of(doc))
    data = json.dumps(replaced(doc, path, new)).encode()
    assert_decodes_or_refuses(data, type_)
    if type_ not in (BackupRun, be.Envelope):
        try:
            parse(data, type_, limits.MAX_BATCH_BYTES)
        except ApiError as exc:
            assert 400 <= exc.status < 500 and exc.message


@PROPS
@given(
    type_=st.sampled_from(WIRE_TYPES),
    depth=st.integers(min_value=1, max_value=20000),
    opener=st.sampled_from([b"[", b'{"a":']),
)
def test_nesting_of_any_depth_is_refused_cleanly(type_: type, depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    data = b'{"protocol": 1, "x": ' + opener * depth + b"1" + closer * depth + b"}"
    assert_decodes_or_refuses(data, type_)


def test_every_valid_example_decodes() -> None:
    for type_, doc in VALID.items():
        decode_any(json.dumps(doc).encode(), type_)


# --- backup run records through the service ------------------------------------------------


class _NoDb:
    async def read(self, fn: Any) -> Any:
        return None

    async def write(self, fn: Any) -> Any:
        return "run-id"


@PROPS
@given(
    value=json_values,
    field=st.sampled_from(
        ["started_at", "finished_at", "seq", "bytes", "files", "outcome", "backup_id"]
    ),
)
def test_run_records_are_stored_or_refused_with_a_4xx(
    tmp_path: Path, value: object, field: str
) -> None:
    svc = BackupService.__new__(BackupService)
    svc.db = _NoDb()
    body = json.dumps({**VALID[BackupRun], "backup_id": None, field: value}).encode()
    try:
        asyncio.run(svc.record_run("srv-1", body))
    except BackupRefused as exc:
        assert 400 <= api_error(exc).status < 500 and exc.message


# --- the collector's configuration ---------------------------------------------------------

KEYS = {
    "collector": [
        "data_dir",
        "listen",
        "report_interval_s",
        "offline_after_intervals",
        "history_days",
        "session_ttl_s",
        "max_clock_skew_s",
        "read_timeout_s",
        "min_body_bytes_per_s",
    ],
    "storage": ["kind", "path", "sqlite_synchronous", "dsn"],
    "backup": [
        "max_size",
        "chunk_size",
        "upload_ttl",
        "maintenance_interval",
        "integrity_every",
        "runs_keep",
        "storage",
    ],
}


def toml_value() -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
        st.sampled_from(["nan", "inf", "-inf", "1e308", "0", "-1", "1.5", "true", "false"]),
        st.text(alphabet=string.printable, max_size=20).map(json.dumps),
        st.sampled_from(['"127.0.0.1:99999"', '"host:port"', '":"', '"[::1]:8700"', '"16MiB"']),
        st.sampled_from(['"24h"', '"0"', '"-5s"', '"99999999999999999999d"', '"x\\u0000y"']),
        st.sampled_from(["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"]),
    )
    return st.one_of(
        scalar,
        st.lists(scalar, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.just("{ a = 1 }"),
    )


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines = []
    for table, keys in KEYS.items():
        if draw(st.booleans()):
            lines.append(f"[{table}]")
            for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
                lines.append(f"{key} = {draw(toml_value())}")
    if draw(st.booleans()):
        lines.append(
            draw(st.sampled_from(["collector = 1", "[collector.x]", "storage = []", "= 1", "[["]))
        )
    return "\n".join(lines) + "\n"


def load_everything(path: Path) -> None:
    cfg = load_config(path, data_dir=path.parent / "data")
    assert cfg.backup == backup_config(cfg.raw)


@PROPS
@given(doc=toml_documents())
def test_random_toml_configuration_loads_or_names_the_key(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(doc)
    try:
        load_everything(path)
    except ConfigError as exc:
        assert exc.key and exc.expected and f"{exc.key}: expected" in str(exc)


@PROPS
@given(data=st.binary(max_size=200))
def test_random_bytes_as_configuration_are_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "collector.toml"
    path.write_bytes(data)
    try:
        load_everything(path)
    except ConfigError as exc:
        assert exc.key and exc.expected


def test_deeply_nested_configuration_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_configuration_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path)


# --- over the wire -------------------------------------------------------------------------

AGENT_PATHS = [
    "/api/v1/agent/enroll",
    "/api/v1/agent/session",
    "/api/v1/agent/reports",
    "/api/v1/agent/backups",
    "/api/v1/agent/backup-runs",
    "/api/v1/agent/backups/uploads/x",
    "/api/v1/agent/backups/uploads/x/complete",
]
PARTNER_PATHS = [
    "/api/v1/servers",
    "/api/v1/servers/{sid}",
    "/api/v1/servers/{sid}/cameras",
    "/api/v1/servers/{sid}/camera-events",
    "/api/v1/servers/{sid}/storage-history",
    "/api/v1/servers/{sid}/backups",
    "/api/v1/servers/{sid}/backup-status",
    "/api/v1/servers/{sid}/backups/latest/envelope",
    "/login",
    "/",
]


def raw_exchange(port: int, data: bytes) -> int | None:
    """Send raw bytes; the status the collector answers (None if it just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
    if not out.startswith(b"HTTP/1."):
        return None
    return int(out.split(b" ", 2)[1])


def test_random_requests_over_the_wire_never_get_a_500(collector: Collector, make_agent) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    rng = random.Random(20261204)
    junk = [b"", b"{}", b"[]", b"null", b"\xff\xfe", b'{"protocol": 1}', b"nan", b"1e400"]
    statuses: dict[int | None, int] = {}
    for i in range(300):
        kind = i % 3
        path = rng.choice(AGENT_PATHS if kind else PARTNER_PATHS).format(sid=sid)
        if rng.random() < 0.3:
            path += (
                "?"
                + rng.choice(["limit=", "offset=", "since=", "status=", "x="])
                + rng.choice(["inf", "-1", "%ff", "1e999", "99999999999999999999", "", "nan", "3"])
            )
        if rng.random() < 0.5:  # a valid message with one value replaced
            doc = VALID[rng.choice(list(VALID))]
            paths = paths_of(doc)
            body = json.dumps(
                replaced(
                    doc, rng.choice(paths), rng.choice([None, -1, 2**64, 1e308, "x" * 300, [], {}])
                )
            ).encode()
        else:
            body = rng.choice(junk) + bytes(rng.getrandbits(8) for _ in range(rng.randrange(64)))
        method = rng.choice(["POST", "PUT", "GET"])
        if kind == 1:  # a correctly signed agent request carrying the junk
            headers = signed_headers(session, method, path, body)
        else:
            headers = {"Authorization": f"Bearer {key}", "Cookie": f"vigil_key={key}"}
            if rng.random() < 0.3:
                headers = {
                    "Authorization": "Bearer " + "".join(rng.choices(string.printable, k=20))
                }
        junk_header = None
        if rng.random() < 0.15:  # undecodable bytes in a header the collector reads
            junk_header = rng.choice(["Authorization", "Cookie", "X-Vigil-Session"])
            headers.pop(junk_header, None)
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        head += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        if junk_header:
            head += junk_header.encode() + b": vgl_\xff\xc0\r\n"
        status = raw_exchange(
            collector.port, head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        statuses[status] = statuses.get(status, 0) + 1
        assert status is not None and status < 500, (method, path, body[:80], status)
    assert http("GET", collector.url + "/healthz")[0] == 200
    assert collector.api(key, "/api/v1/servers")[1]["count"] == 1
    assert len(statuses) > 3  # the fuzz reached more than one kind of answer


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b'[collector]\nlisten = "127.0.0.1:99999"\n', "collector.listen"),
        (b"[collector]\nsession_ttl_s = 9223372036854775807\n", "collector.session_ttl_s"),
        (b"[collector]\nread_timeout_s = 0\n", "collector.read_timeout_s"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "(syntax)"),
        (b'[collector]\ndata_dir = "\xff\xfe"\n', "(file)"),
        (b"[backup]\nmax_size = nan\n", "max_size"),
    ],
)
def test_serve_with_a_bad_configuration_says_so_in_one_line(
    tmp_path: Path, content: bytes, key: str
) -> None:
    config = tmp_path / "collector.toml"
    config.write_bytes(content)
    out = subprocess.run(
        [str(BIN / "vigil-collector"), "serve", "--config", str(config), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("vigil-collector: ") and f"{key}: expected" in line, out.stderr

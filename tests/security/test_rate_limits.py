"""Guessing credentials is slowed down: 429 with Retry-After after a few failures, per source
address and per credential, on enrollment, sessions, the partner API and the sign-in page."""

from __future__ import annotations

import json
import uuid

import pytest

from collector.config import ConfigError, RateLimitConfig, load_config
from collector.http.ratelimit import AuthLimits, FailureLimiter
from harness.net import http, page_sign_in
from harness.processes import Collector
from harness.signed import enroll_raw, session_for, session_raw
from tests.conftest import MakeCollector

# A window of an hour: no failure is refilled while a test runs, however slow the machine.
BY_ADDRESS = "[rate_limits]\naddress_failures = 5\ncredential_failures = 1000\nwindow_s = 3600\n"
BY_CREDENTIAL = "[rate_limits]\naddress_failures = 1000\ncredential_failures = 3\nwindow_s = 3600\n"


def _assert_limited(status: int, headers: dict[str, str], body: dict) -> None:
    assert status == 429, (status, body)
    assert int(headers["Retry-After"]) >= 1
    assert body["error"] == "rate_limited" and "retry in" in body["message"]


def test_bad_enrollment_tokens_are_limited_per_address(make_collector: MakeCollector) -> None:
    c = make_collector(BY_ADDRESS)
    _, token = c.partner("acme")
    for i in range(5):
        status, _, body = enroll_raw(c.url, f"vgl_enr_guess{i}")
        assert status == 403 and body["error"] == "token_refused"
    _assert_limited(*enroll_raw(c.url, "vgl_enr_guess-more"))
    _assert_limited(*enroll_raw(c.url, token))  # no more guesses, not even a right one
    # The address is limited on every endpoint that counts failures, the API included.
    assert c.api(c.last_line("apikey", "create", "--partner", "acme"), "/api/v1/servers")[0] == 429
    assert json.loads(c.cli("servers", "--json"))["count"] == 0, "nothing was enrolled"


def test_bad_session_signatures_are_limited_per_server(
    make_collector: MakeCollector, make_agent
) -> None:
    c = make_collector(BY_CREDENTIAL)
    _, token_a = c.partner("acme")
    _, token_b = c.partner("other")
    victim = make_agent("victim").enroll(c.url, token_a)
    bystander = make_agent("bystander")
    bystander_id = bystander.enroll(c.url, token_b)
    for _ in range(3):
        status, _, body = session_raw(c.url, victim)
        assert status == 401 and body["error"] == "bad_signature"
    _assert_limited(*session_raw(c.url, victim))
    # The limit is the victim server's: another partner's agent at the same address goes on.
    sid, _ = session_for(bystander.state_dir, c.url)
    assert sid.startswith("ses_") and bystander_id


def test_unknown_servers_count_against_the_address(make_collector: MakeCollector) -> None:
    c = make_collector(BY_ADDRESS)
    for i in range(5):
        status, _, body = session_raw(c.url, f"srv_{i:016x}")
        assert status == 401 and body["error"] == "unknown_server"
    _assert_limited(*session_raw(c.url, "srv_0000000000000099"))


def test_api_key_guesses_are_limited_and_good_keys_are_not(
    make_collector: MakeCollector,
) -> None:
    c = make_collector(BY_ADDRESS)
    key, _ = c.partner("acme")
    for _ in range(40):  # successes never spend from the budget
        assert c.api(key, "/api/v1/servers")[0] == 200
    for i in range(4):
        assert c.api(f"vgl_key_{i:06d}{uuid.uuid4().hex}", "/api/v1/servers")[0] == 401
    for _ in range(40):
        assert c.api(key, "/api/v1/servers")[0] == 200
    assert c.api("vgl_key_xxxxxxwrong", "/api/v1/servers")[0] == 401
    status, headers, body = http(
        "GET", c.url + "/api/v1/servers", headers={"Authorization": "Bearer vgl_key_nope"}
    )
    _assert_limited(status, headers, json.loads(body))


def test_api_key_guesses_are_limited_per_key_prefix(make_collector: MakeCollector) -> None:
    c = make_collector(BY_CREDENTIAL)
    key, _ = c.partner("acme")
    other_key, _ = c.partner("other")
    prefix = key[:14]
    for _ in range(3):
        assert c.api(prefix + uuid.uuid4().hex, "/api/v1/servers")[0] == 401
    status, headers, body = http(
        "GET", c.url + "/api/v1/servers", headers={"Authorization": f"Bearer {prefix}zzz"}
    )
    _assert_limited(status, headers, json.loads(body))
    assert c.api(other_key, "/api/v1/servers")[0] == 200, "another key is not limited"


def test_sign_in_failures_are_limited_with_an_html_answer(
    make_collector: MakeCollector,
) -> None:
    c = make_collector(BY_ADDRESS)
    key, _ = c.partner("acme")
    for _ in range(5):
        assert page_sign_in(c.url, "vgl_key_" + uuid.uuid4().hex)[0] == 401
    status, headers, page = page_sign_in(c.url, key)
    assert status == 429
    found = dict((k.lower(), v) for k, v in headers)
    assert int(found["retry-after"]) >= 1
    assert found["content-type"].startswith("text/html")
    assert b"Too many failed sign-ins" in page


@pytest.mark.parametrize(
    "text, key",
    [
        ("[rate_limits]\naddress_failures = 0\n", "rate_limits.address_failures"),
        ('[rate_limits]\ncredential_failures = "5"\n', "rate_limits.credential_failures"),
        ("[rate_limits]\nwindow_s = true\n", "rate_limits.window_s"),
        ("[rate_limits]\nmax_tracked = 10\n", "rate_limits.max_tracked"),
        ("rate_limits = 3\n", "rate_limits"),
        ('[pages]\nsecure_cookies = "yes"\n', "pages.secure_cookies"),
        ('[metrics]\ntoken = "short"\n', "metrics.token"),
    ],
)
def test_bad_limits_are_refused_at_start(tmp_path, text: str, key: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.key == key
    out = Collector(tmp_path / "data", config=cfg).cli("serve", check=False)
    assert key in out


def test_the_limiter_remembers_a_bounded_number_of_keys() -> None:
    lim = FailureLimiter(capacity=2, window_s=60, max_tracked=100)
    for i in range(10_000):
        lim.failed(f"k{i}", now=0.0)
    assert len(lim) == 100
    lim.failed("x", now=0.0)
    lim.failed("x", now=0.0)
    assert lim.retry_after("x", now=0.0) == pytest.approx(30.0)
    assert lim.retry_after("x", now=31.0) is None, "one failure refilled after window/capacity"
    assert lim.retry_after("never-failed", now=0.0) is None
    limits = AuthLimits(RateLimitConfig(address_failures=1, credential_failures=1))
    limits.failed("10.0.0.1", ["c1"])
    assert limits.retry_after("10.0.0.2", ["c1"]) == 60
    assert limits.retry_after("10.0.0.1", ["c2"]) == 60
    assert limits.retry_after("10.0.0.2", ["c2"]) is None

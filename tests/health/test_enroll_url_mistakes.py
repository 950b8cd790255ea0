"""The collector URL slips an installer makes get one line naming the slip."""

from __future__ import annotations

import pytest

from harness.processes import Collector
from protocol.collector_url import CollectorUrlError, check_collector_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://vigil.example.net", "https://vigil.example.net"),
        ("https://vigil.example.net:8700/", "https://vigil.example.net:8700"),
        ("HTTP://127.0.0.1:8700", "http://127.0.0.1:8700"),
    ],
)
def test_good_urls_are_kept_without_trailing_slash(url: str, expected: str) -> None:
    assert check_collector_url(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("vigil.example.net:8700", "has no scheme; use https://vigil.example.net:8700"),
        ("ftp://vigil.example.net", "must start with https:// or http://"),
        ("https://vigil.example.net/api/v1", "use https://vigil.example.net (not"),
        ("https://h:99999", "must be a number"),
        ("https://", "names no host"),
    ],
)
def test_url_slips_are_named(url: str, words: str) -> None:
    with pytest.raises(CollectorUrlError) as err:
        check_collector_url(url)
    assert words in str(err.value)


def _enroll(make_agent, url: str, token: str):
    agent = make_agent()
    return agent.cmd("enroll", "--collector", url, "--token", token, check=False)


def test_enroll_names_each_slip_and_exits_non_zero(collector: Collector, make_agent) -> None:
    _key, token = collector.partner("acme")
    hostport = collector.url.removeprefix("http://")

    out = _enroll(make_agent, hostport, token)
    assert out.returncode == 2
    assert f"use https://{hostport} (or http://{hostport}" in out.stderr

    out = _enroll(make_agent, collector.url + "/api/v1/agent/enroll", token)
    assert out.returncode == 2
    assert f"use {collector.url} (not" in out.stderr

    out = _enroll(make_agent, f"https://{hostport}", token)
    assert out.returncode == 1
    assert "TLS handshake" in out.stderr and f"use http://{hostport}" in out.stderr

    assert "Traceback" not in out.stderr
    # The token was not spent on any of the slips: the right URL still enrolls.
    assert _enroll(make_agent, collector.url, token).returncode == 0

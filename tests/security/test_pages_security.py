"""The pages' sign-in: a random server-side session in the cookie (never the API key), CSRF
on every form, POST-only sign-out, security headers a strict CSP can live with; and the
``/metrics`` token."""

from __future__ import annotations

import re
import time
import urllib.parse

from harness.net import http, http_no_redirect, page_session_cookie, page_sign_in, set_cookies
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for
from tests.conftest import MakeCollector

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _headers(url: str, cookie: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = http_no_redirect("GET", url, headers=cookie or {})
    return status, {k.lower(): v for k, v in headers}, body


def _signed_in(c: Collector, cookie: dict[str, str]) -> bool:
    return _headers(c.url + "/", cookie)[0] == 200


def _csrf(page: bytes) -> str:
    m = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert m is not None, page
    return m.group(1).decode()


def test_the_cookie_is_a_server_side_session_not_the_key(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    status, headers, _ = page_sign_in(collector.url, key)
    assert status == 302
    cookie = set_cookies(headers)["vigil_session"]
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert key not in cookie and value.startswith("vgl_web_") and len(value) > 40
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attrs
    assert "secure" not in attrs, "plain HTTP without [pages] secure_cookies"
    assert all(key not in v for k, v in headers)
    # The API key itself in a cookie (what the pages once kept) signs nobody in.
    assert not _signed_in(collector, {"Cookie": f"vigil_key={urllib.parse.quote(key)}"})
    assert not _signed_in(collector, {"Cookie": f"vigil_session={key}"})
    assert _signed_in(collector, {"Cookie": cookie.split(";", 1)[0]})


def test_sign_in_needs_the_forms_csrf_token(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    body = urllib.parse.urlencode({"api_key": key}).encode()
    status, headers, _ = http_no_redirect("POST", collector.url + "/login", body, FORM)
    assert status == 403 and "vigil_session" not in set_cookies(headers)
    _, headers, page = http_no_redirect("GET", collector.url + "/login")
    token = _csrf(page)
    forged = urllib.parse.urlencode({"api_key": key, "csrf": token}).encode()
    status, headers, _ = http_no_redirect(
        "POST", collector.url + "/login", forged, {**FORM, "Cookie": "vigil_csrf=attacker"}
    )
    assert status == 403 and "vigil_session" not in set_cookies(headers)


def test_sign_out_is_a_post_with_csrf_and_ends_the_session(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    cookie = page_session_cookie(collector.url, key)
    status, _, page = _headers(collector.url + "/", cookie)
    assert status == 200 and b'action="/logout"' in page
    token = _csrf(page)
    assert http_no_redirect("GET", collector.url + "/logout", headers=cookie)[0] == 405
    assert _signed_in(collector, cookie)
    status, _, _ = http_no_redirect("POST", collector.url + "/logout", b"", {**FORM, **cookie})
    assert status == 403 and _signed_in(collector, cookie)
    status, headers, _ = http_no_redirect(
        "POST", collector.url + "/logout", f"csrf={token}".encode(), {**FORM, **cookie}
    )
    assert status == 302 and dict(headers)["Location"] == "/login"
    assert not _signed_in(collector, cookie), "the session is gone, not only the cookie"


def test_revoking_the_api_key_ends_its_sign_ins(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    other, _ = collector.partner("rival")
    cookie = page_session_cookie(collector.url, key)
    kept = page_session_cookie(collector.url, other)
    collector.cli("apikey", "revoke", key[:14])
    assert not _signed_in(collector, cookie)
    assert _signed_in(collector, kept)


def test_sign_ins_expire(make_collector: MakeCollector) -> None:
    c = make_collector("[pages]\nsession_ttl_s = 2\n")
    key, _ = c.partner("acme")
    cookie = page_session_cookie(c.url, key)
    assert _signed_in(c, cookie)
    time.sleep(2.5)
    assert not _signed_in(c, cookie)


def test_cookies_are_secure_behind_a_tls_proxy(make_collector: MakeCollector) -> None:
    c = make_collector("[pages]\nsecure_cookies = true\n")
    key, _ = c.partner("acme")
    _, headers, _ = http_no_redirect("GET", c.url + "/login")
    assert "secure" in set_cookies(headers)["vigil_csrf"].lower()
    _, headers, _ = page_sign_in(c.url, key)
    attrs = {a.strip().lower() for a in set_cookies(headers)["vigil_session"].split(";")[1:]}
    assert "secure" in attrs


def test_pages_send_security_headers_and_need_no_inline_code(
    collector: Collector, make_agent
) -> None:
    key, token = collector.partner("acme")
    agent = make_agent()
    sid = agent.enroll(collector.url, token)
    session = session_for(agent.state_dir, collector.url)
    for seq in (1, 2):
        assert (
            post_signed(collector.url, session, "/api/v1/agent/reports", batch(report(seq)))[0]
            == 200
        )
    cookie = page_session_cookie(collector.url, key)
    pages = [
        ("/login", None, 200),
        ("/", None, 302),
        ("/", cookie, 200),
        (f"/servers/{sid}", cookie, 200),
        ("/servers/srv_nope", cookie, 404),
        ("/settings/notifications", cookie, 200),
        ("/settings/notifications/channels/ch_nope", cookie, 404),
    ]
    for path, ck, expected in pages:
        status, headers, body = _headers(collector.url + path, ck)
        assert status == expected, (path, status)
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        if status == 200:
            assert b"<style" not in body and b"style=" not in body
            # Scripts only from the collector itself, none inline.
            assert re.findall(rb"<script[^>]*>", body) in (
                [],
                [b'<script src="/static/vigil.js" defer>'],
            )
            assert b'href="/static/vigil.css"' in body
    status, headers, body = _headers(collector.url + f"/servers/{sid}", cookie)
    assert b'class="w40"' in body, "the 40% bar takes its width from the style sheet"
    status, headers, css = _headers(collector.url + "/static/vigil.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert b".bar span.w40{width:40%}" in css
    status, headers, _ = _headers(collector.url + "/api/v1/openapi.json")
    assert "x-frame-options" not in headers, "the JSON API is not a page"


def test_metrics_need_the_configured_token(make_collector: MakeCollector) -> None:
    secret = "metrics-token-0123456789"
    c = make_collector(f'[metrics]\ntoken = "{secret}"\n')
    c.partner("acme")
    assert http("GET", c.url + "/metrics")[0] == 401
    assert http("GET", c.url + "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    status, _, body = http("GET", c.url + "/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert status == 200 and b"vigil_reports_received" in body


def test_open_metrics_show_no_partner(collector: Collector, make_agent) -> None:
    _, token = collector.partner("acme-secret-customer")
    make_agent().enroll(collector.url, token)
    status, _, body = http("GET", collector.url + "/metrics")
    assert status == 200 and b"vigil_servers" in body
    assert b"acme-secret-customer" not in body and b"srv_" not in body

"""Plain network calls on 127.0.0.1 for tests and benchmarks: a free port, waiting for a
condition, one HTTP request (no redirects followed where cookies matter), signing in on the
pages as a browser does."""

from __future__ import annotations

import http.client as http_client
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for any status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def http_no_redirect(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One HTTP request, redirects not followed; headers as a list (Set-Cookie repeats)."""
    parts = urllib.parse.urlsplit(url)
    conn = http_client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path or "/", body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        conn.close()


def set_cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    """name → the whole Set-Cookie header, from a response's headers."""
    return {v.split("=", 1)[0].strip(): v for k, v in headers if k.lower() == "set-cookie"}


def page_sign_in(url: str, api_key: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Sign in on the pages' form as a browser does (its CSRF cookie and field)."""
    _, headers, page = http_no_redirect("GET", url + "/login")
    csrf_cookie = set_cookies(headers)["vigil_csrf"].split(";", 1)[0]
    field = re.search(rb'name="csrf" value="([^"]*)"', page)
    assert field is not None, page
    form = urllib.parse.urlencode({"csrf": field.group(1).decode(), "api_key": api_key})
    return http_no_redirect(
        "POST",
        url + "/login",
        form.encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie},
    )


def page_session_cookie(url: str, api_key: str) -> dict[str, str]:
    """Signed in: the ``Cookie`` header the browser then sends."""
    status, headers, body = page_sign_in(url, api_key)
    assert status == 302, (status, body)
    return {"Cookie": set_cookies(headers)["vigil_session"].split(";", 1)[0]}


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)

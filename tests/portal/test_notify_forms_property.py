"""Whatever a signed-in admin's browser posts to the notification and password-reset
forms, the collector answers with a page (a refusal names what is wrong) and never 500.

The collector app runs in this process (``harness.app``) so that many generated forms
cost little; each is a real HTTP request over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import secrets_store
from collector.accounts import passwords, store
from collector.http.appkeys import DB
from harness.app import app_client

FIELDS = (
    "type", "name", "url", "secret", "host", "port", "security", "username", "from", "to",
    "customer", "channel", "kinds", "min_severity", "site", "group_wait", "repeat",
    "send_resolved", "digest", "digest_hour", "quiet_from", "quiet_until", "timezone",
    "scope", "value", "duration", "until", "reason", "back", "email", "t", "password", "again",
)  # fmt: skip
PATHS = (
    "/settings/notifications/channels",
    "/settings/notifications/channels/{channel}/remove",
    "/settings/notifications/routes",
    "/settings/notifications/routes/{route}/remove",
    "/settings/notifications/silences",
    "/settings/notifications/silences/{silence}/end",
    "/servers/srv_nope/silence",
    "/forgot-password",
    "/reset-password",
)
TEXT = st.one_of(
    st.sampled_from(["", "0", "-1", "99999", "1h", "*", "webhook", "smtp", "apprise", "server",
                     "site", "22:00", "2999-01-01T00:00", "http://127.0.0.1:9/", "whsec_x",
                     "\u00b2", "\u00b2:00"]),
    st.text(max_size=30),
)  # fmt: skip
PASSWORD = "a long enough password"


async def _signed_in(client: TestClient) -> tuple[dict[str, str], str, dict[str, str]]:
    """An admin's session cookie, its CSRF token, and ids of a channel, route, silence."""
    hashed = passwords.hash_password(PASSWORD)

    def world(c: Any) -> dict[str, str]:
        partner = secrets_store.add_partner(c, "acme")
        store.add_user(c, "admin@example.test", hashed, partner.id, "admin", None)
        return {}

    await client.app[DB].write(world)
    page = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    form = {"csrf": csrf.group(1), "email": "admin@example.test", "password": PASSWORD}
    resp = await client.post("/login", data=form, allow_redirects=False)
    assert resp.status == 302
    cookies = {
        k: v.value
        for k, v in client.session.cookie_jar.filter_cookies(client.make_url("/")).items()
    }
    page = await (await client.get("/settings/notifications")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    ids = {}
    base = "/settings/notifications"
    fields = {"csrf": token.group(1), "type": "webhook", "url": "http://127.0.0.1:9/"}
    resp = await client.post(f"{base}/channels", data=fields, allow_redirects=False)
    assert resp.status == 201
    page = await (await client.get(base)).text()
    ids["channel"] = re.findall(r'id="(ch_[0-9a-f]+)"', page)[0]
    for what, extra in (
        ("routes", {"channel": ids["channel"]}),
        ("silences", {"scope": "partner", "duration": "1h"}),
    ):
        resp = await client.post(
            f"{base}/{what}", data={"csrf": token.group(1), **extra}, allow_redirects=False
        )
        assert resp.status == 303, await resp.text()
        ids[what[:-1]] = re.search(r"\+(\d+)\+", resp.headers["Location"]).group(1)  # type: ignore[union-attr]
    return cookies, token.group(1), ids


def test_notification_and_reset_forms_never_fail(tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(
        '[mail]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\nfrom = "v@example.test"\n'
        'public_url = "https://vigil.example.test"\n[rate_limits]\ncredential_failures = 1000\n'
        "address_failures = 100000\n"
    )
    loop = asyncio.new_event_loop()
    ctx = app_client(tmp_path / "data", config)
    client = loop.run_until_complete(ctx.__aenter__())
    try:
        _, token, ids = loop.run_until_complete(_signed_in(client))

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            path=st.sampled_from(PATHS),
            fields=st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=8),
        )
        def one(path: str, fields: dict[str, str]) -> None:
            url = path.format(**ids)
            form = {"csrf": token, **fields}

            async def post() -> tuple[int, str]:
                resp = await client.post(url, data=form, allow_redirects=False)
                return resp.status, await resp.text()

            status, body = loop.run_until_complete(post())
            assert status in (200, 201, 303, 400, 403, 404, 429), (url, fields, status, body)
            if status in (400, 404):
                assert "<html" in body  # a page that says what is wrong, not a stack

        one()
    finally:
        loop.run_until_complete(ctx.__aexit__(None, None, None))
        loop.close()


def _admin_key(c: Any) -> str:
    found = store.user_by_email(c, "admin@example.test")
    assert found is not None
    return store.create_key(c, found[0], "test")


def test_digits_that_are_not_ascii_are_refused_not_failed(tmp_path: Path) -> None:
    """'²' is a digit to ``str.isdigit`` but not to ``int``: forms, ids and API bodies
    holding it used to answer 500."""

    async def go() -> list[tuple[str, int]]:
        async with app_client(tmp_path / "data") as client:
            _, token, ids = await _signed_in(client)
            base = "/settings/notifications"
            cases = [
                (f"{base}/routes/\u00b2/remove", {}),
                (f"{base}/silences/\u00b2/end", {}),
                ("/settings/api-keys/\u00b2/revoke", {}),
                ("/settings/users/\u00b2/disable", {}),
                (f"{base}/channels", {"type": "smtp", "port": "\u00b2"}),
                (f"{base}/routes", {"channel": ids["channel"], "digest_hour": "\u00b2"}),
                (
                    f"{base}/routes",
                    {"channel": ids["channel"], "quiet_from": "\u00b2:00", "quiet_until": "06:00"},
                ),
                ("/settings/backup-policy", {"interval": "1d", "keep_last": "\u00b2"}),
            ]
            out = []
            key = await client.app[DB].write(_admin_key)
            auth = {"Authorization": f"Bearer {key}"}
            for method, url, body in (
                ("DELETE", "/api/v1/api-keys/\u00b2", None),
                ("DELETE", "/api/v1/notify/routes/\u00b2", None),
                (
                    "POST",
                    "/api/v1/notify/routes",
                    {
                        "channel": ids["channel"],
                        "quiet_hours": {"from": "\u00b2:00", "until": "6:00"},
                    },
                ),
            ):
                resp = await client.request(method, url, json=body, headers=auth)
                out.append((url, resp.status))
            for url, fields in cases:
                resp = await client.post(url, data={"csrf": token, **fields}, allow_redirects=False)
                out.append((url, resp.status))
            return out

    answers = asyncio.run(go())
    assert all(status in (400, 404) for _, status in answers), answers

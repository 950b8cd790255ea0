"""Password reset by a one-time link: a real collector mails the link to an SMTP server
on 127.0.0.1 (aiosmtpd); the test reads the mail, follows the link as a browser does and
signs in with the new password. The form answers the same for an unknown address, the
link works once, expires, is stored only as a hash, and asking is rate-limited.
"""

from __future__ import annotations

import hashlib
import re
import signal
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.accounts.mail import mail_config
from collector.config import ConfigError, load_config
from harness.database import PrivatePostgres, collector_sql, own_database_env
from harness.net import http_no_redirect, set_cookies, wait_until
from harness.processes import Collector
from tests.notify.receivers import MailCatcher
from tests.portal.world import csrf_of, page, sign_in

PUBLIC = "https://vigil.example.test"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Site:
    collector: Collector
    mails: MailCatcher
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("reset")
    mails = MailCatcher()
    config = root / "collector.toml"
    config.write_text(
        f'[mail]\nhost = "127.0.0.1"\nport = {mails.port}\nsecurity = "none"\n'
        f'from = "vigil@example.test"\npublic_url = "{PUBLIC}/"\n'
        "[rate_limits]\ncredential_failures = 3\n"
    )
    c = Collector(root / "collector", config=config, env=own_database_env(postgres_server)).start()
    c.partner("acme")
    passwords = {}
    for user in ("ann", "bob", "cat", "dan"):
        email = f"{user}@example.test"
        passwords[user] = c.last_line("user", "add", email, "--partner", "acme")
    try:
        yield Site(c, mails, passwords)
    finally:
        c.kill(signal.SIGTERM)
        mails.close()


def _open_form(c: Collector, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET a form for someone not signed in: (status, the CSRF cookie header, page)."""
    status, headers, body = http_no_redirect("GET", c.url + path)
    cookie = set_cookies(headers).get("vigil_csrf", "").split(";", 1)[0]
    return status, {"Cookie": cookie}, body


def _post(c: Collector, path: str, fields: dict[str, str]) -> tuple[int, bytes]:
    form_path = path if path != "/reset-password" else "/forgot-password"
    _, cookie, body = _open_form(c, form_path)
    data = urllib.parse.urlencode({"csrf": csrf_of(body), **fields}).encode()
    status, _, out = http_no_redirect("POST", c.url + path, data, {**FORM, **cookie})
    return status, out


def _mails_to(site: Site, email: str) -> list[str]:
    return [m.get_content() for m in site.mails.messages if m["To"] == email]  # type: ignore[attr-defined]


def _link(text: str) -> str:
    m = re.search(r"(https://\S+/reset-password\?t=\S+)", text)
    assert m is not None, text
    return m.group(1)


def _without_tokens(body: bytes) -> bytes:
    return re.sub(rb'name="csrf" value="[^"]*"', b"", body)


def test_a_link_by_mail_sets_a_new_password(site: Site) -> None:
    c, email = site.collector, "ann@example.test"
    status, before, _ = sign_in(c, email, site.passwords["ann"])
    assert status == 302
    status, body = page(c, "/login", {})
    assert b'href="/forgot-password"' in body
    status, known = _post(c, "/forgot-password", {"email": email.upper()})
    assert status == 200 and b"is on its way" in known
    text = wait_until(lambda: _mails_to(site, email), 15, what="the reset mail")[0]
    link = _link(text)
    assert link.startswith(PUBLIC + "/reset-password?t=")  # the configured address
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["t"][0]

    # Only the token's hash is stored.
    with collector_sql(c.data_dir, c.env) as db:
        stored = [r[0] for r in db.execute("SELECT token_hash FROM password_resets")]
    assert hashlib.sha256(token.encode()).hexdigest() in stored and token not in stored

    path = "/reset-password?" + urllib.parse.urlsplit(link).query
    status, cookie, body = _open_form(c, path)
    assert status == 200 and b"Choose a new password" in body
    new = "a new long password 1"

    def submit(password: str, again: str) -> tuple[int, bytes]:
        data = urllib.parse.urlencode(
            {"csrf": csrf_of(body), "t": token, "password": password, "again": again}
        ).encode()
        status, _, out = http_no_redirect(
            "POST", c.url + "/reset-password", data, {**FORM, **cookie}
        )
        return status, out

    status, out = submit(new, new + "x")
    assert status == 400 and b"The two differ" in out
    status, out = submit("short", "short")
    assert status == 400 and b"characters" in out
    status, out = submit(new, new)
    assert status == 200 and b"Your password is changed" in out
    # The old password and the sign-in made with it are gone; the new one works.
    assert page(c, "/", before)[0] == 302
    assert sign_in(c, email, site.passwords["ann"])[0] == 401
    assert sign_in(c, email, new)[0] == 302
    # Once only.
    status, out = submit("another long password", "another long password")
    assert status == 400 and b"This link is not valid" in out
    assert _open_form(c, path)[0] == 400


def test_an_unknown_address_gets_the_same_answer_and_no_mail(site: Site) -> None:
    c = site.collector
    status, known = _post(c, "/forgot-password", {"email": "bob@example.test"})
    status2, unknown = _post(c, "/forgot-password", {"email": "nobody@example.test"})
    assert (status, _without_tokens(known)) == (status2, _without_tokens(unknown))
    wait_until(lambda: _mails_to(site, "bob@example.test"), 15, what="bob's mail")
    assert _mails_to(site, "nobody@example.test") == []


def test_a_link_expires_and_a_newer_one_replaces_it(site: Site) -> None:
    c, email = site.collector, "cat@example.test"
    assert _post(c, "/forgot-password", {"email": email})[0] == 200
    first = _link(wait_until(lambda: _mails_to(site, email), 15, what="cat's mail")[0])
    query = urllib.parse.urlsplit(first).query
    assert _open_form(c, "/reset-password?" + query)[0] == 200
    # An hour passes (the expiry is stored; the clock is the collector's).
    with collector_sql(c.data_dir, c.env) as db:
        db.execute(
            "UPDATE password_resets SET expires_at = ?, created_at = ? WHERE user_id = "
            "(SELECT id FROM users WHERE email = ?)",
            (time.time() - 1, time.time() - 3600, email),
        )
    status, _, body = _open_form(c, "/reset-password?" + query)
    assert status == 400 and b"has expired" in body
    assert _post(c, "/forgot-password", {"email": email})[0] == 200
    mails = wait_until(lambda: len(_mails_to(site, email)) == 2 and _mails_to(site, email), 15)
    assert _link(mails[1]) != first
    assert (
        _open_form(c, "/reset-password?" + urllib.parse.urlsplit(_link(mails[1])).query)[0] == 200
    )


def test_asking_is_rate_limited(site: Site) -> None:
    c, email = site.collector, "dan@example.test"
    answers = [_post(c, "/forgot-password", {"email": email})[0] for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    wait_until(lambda: _mails_to(site, email), 15, what="dan's mail")
    # One link, so one mail: the requests after it within a minute made none.
    with collector_sql(c.data_dir, c.env) as db:
        links = db.execute(
            "SELECT count(*) FROM password_resets r JOIN users u ON u.id = r.user_id "
            "WHERE u.email = ?",
            (email,),
        ).fetchone()
    assert tuple(links) == (1,) and len(_mails_to(site, email)) == 1


def test_forms_refuse_without_their_token_and_garbage_never_fails(site: Site) -> None:
    c = site.collector
    data = urllib.parse.urlencode({"email": "ann@example.test"}).encode()
    assert http_no_redirect("POST", c.url + "/forgot-password", data, FORM)[0] == 403
    for fields in ({"email": "x"}, {"email": "\u00e9" * 300}, {}):
        assert _post(c, "/forgot-password", fields)[0] in (200, 400, 429)
    for query in ("", "?t=", "?t=" + "x" * 500, "?t=%00%ff", "?t=" + "a" * 43):
        assert _open_form(c, "/reset-password" + query)[0] == 400
    status, out = _post(
        c, "/reset-password", {"t": "a" * 43, "password": "x" * 20, "again": "x" * 20}
    )
    assert status == 400 and b"This link is not valid" in out


def test_mail_settings_are_checked_when_loaded(tmp_path: Path) -> None:
    assert not mail_config({}).enabled
    for table, key in (
        ({"host": "m", "public_url": "https://x"}, "from"),
        ({"host": "m", "from": "a@b"}, "public_url"),
        ({"host": "m", "from": "a@b", "public_url": "https://x", "port": 70000}, "port"),
        ({"security": "ssl"}, "security"),
        ({"reset_ttl_s": 5}, "reset_ttl_s"),
        ({"hots": "m"}, "hots"),
    ):
        cfg = tmp_path / "c.toml"
        lines = "".join(
            f"{k} = {v}\n" if isinstance(v, int) else f'{k} = "{v}"\n' for k, v in table.items()
        )
        cfg.write_text("[mail]\n" + lines)
        with pytest.raises(ConfigError) as err:
            load_config(cfg, tmp_path)
        assert err.value.key == f"mail.{key}" and err.value.source == str(cfg)

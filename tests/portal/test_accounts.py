"""Accounts over the wire: password sign-in, roles through the API, API keys owned by
users (listed, last used, revoked), disabled users, enrollment tokens, the partner keys
made before accounts existed (their partner's service account)."""

from __future__ import annotations

import urllib.parse

import pyotp
import pytest

from harness.database import collector_sql
from harness.processes import Agent
from tests.portal.world import VENDOR, World, call, page, post_form, sign_in


def test_a_user_signs_in_with_email_and_password_and_sees_its_partner(world: World) -> None:
    c = world.collector
    status, cookie, _ = sign_in(c, world.email("acme-viewer"), world.passwords["acme-viewer"])
    assert status == 302 and cookie["Cookie"].startswith("vigil_session=vgl_web_")
    status, body = page(c, "/", cookie)
    assert status == 200 and b"museum-1" in body and b"rival-1" not in body
    status, none, body = sign_in(c, world.email("acme-viewer"), "not the password at all")
    assert status == 401 and not none and b"Unknown e-mail address, password" in body
    status, none, _ = sign_in(c, "nobody@example.test", world.passwords["acme-viewer"])
    assert status == 401 and not none


def test_the_password_hash_is_argon2id_and_never_the_password(world: World) -> None:
    with collector_sql(world.collector.data_dir, world.collector.env) as conn:
        rows = conn.execute("SELECT email, password_hash FROM users WHERE service = 0").fetchall()
    assert rows
    for email, hashed in rows:
        assert hashed.startswith("$argon2id$"), email
        assert world.passwords[email.split("@")[0]] not in hashed


def test_password_guessing_is_rate_limited_per_account(world: World) -> None:
    c = world.collector
    status, new = call(
        c,
        world.keys["acme-admin"],
        "POST",
        "/api/v1/users",
        {"email": "guessed@example.test", "password": "correct horse battery", "role": "viewer"},
    )
    assert status == 201, new
    statuses: list[int] = []
    while 429 not in statuses and len(statuses) < 20:  # the bucket refills 1 per 6 s
        statuses.append(sign_in(c, "guessed@example.test", f"wrong guess {len(statuses)}")[0])
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401} and len(statuses) >= 11
    # Limited before the password is looked at: the right one is refused too, for now.
    assert sign_in(c, "guessed@example.test", "correct horse battery")[0] == 429


def test_roles_decide_what_a_key_may_do(world: World) -> None:
    c = world.collector
    inc = world.incidents["bakery-1"]
    assert call(c, world.keys["acme-viewer"], "GET", f"/api/v1/incidents/{inc}")[0] == 200
    assert (
        call(c, world.keys["acme-viewer"], "POST", f"/api/v1/incidents/{inc}/acknowledge", {})[0]
        == 403
    )
    assert call(c, world.keys["acme-operator"], "POST", "/api/v1/users", {})[0] == 403
    assert call(c, world.keys["acme-operator"], "PUT", "/api/v1/incident-priorities", {})[0] == 403
    assert call(c, world.keys["acme-viewer"], "POST", "/api/v1/enrollment-tokens", {})[0] == 403
    status, me = call(c, world.keys["acme-operator"], "GET", "/api/v1/me")
    assert status == 200 and me["role"] == "operator" and me["customer"] is None
    # A customer's operator may accept or reopen, not acknowledge, nor read contracts.
    museum_inc = world.incidents["museum-1"]
    assert (
        call(c, world.keys["museum"], "POST", f"/api/v1/incidents/{museum_inc}/acknowledge", {})[0]
        == 403
    )
    assert call(c, world.keys["museum"], "GET", "/api/v1/contracts")[0] == 403


def test_api_keys_belong_to_a_user_show_last_use_and_can_be_revoked(world: World) -> None:
    c = world.collector
    operator = world.keys["acme-operator"]
    status, made = call(c, operator, "POST", "/api/v1/api-keys", {"label": "ticket sync"})
    assert status == 201 and made["key"].startswith("vgl_key_")
    assert call(c, made["key"], "GET", "/api/v1/servers")[0] == 200
    _, mine = call(c, operator, "GET", "/api/v1/api-keys")
    row = next(k for k in mine["api_keys"] if k["prefix"] == made["prefix"])
    assert row["owner"] == world.email("acme-operator") and row["label"] == "ticket sync"
    assert row["last_used_at"] is not None and row["revoked_at"] is None
    assert {k["owner"] for k in mine["api_keys"]} == {world.email("acme-operator")}
    # The key carries its user's role.
    assert call(c, made["key"], "POST", "/api/v1/users", {})[0] == 403
    # Another user's key: not the operator's to revoke (as if it did not exist).
    _, everyone = call(c, world.keys["acme-admin"], "GET", "/api/v1/api-keys")
    admins = next(k for k in everyone["api_keys"] if k["owner"] == world.email("acme-admin"))
    assert call(c, operator, "DELETE", f"/api/v1/api-keys/{admins['id']}")[0] == 404
    # Another partner's admin cannot revoke it either.
    assert call(c, world.keys["rival-admin"], "DELETE", f"/api/v1/api-keys/{row['id']}")[0] == 404
    assert call(c, operator, "DELETE", f"/api/v1/api-keys/{row['id']}")[0] == 200
    assert call(c, made["key"], "GET", "/api/v1/servers")[0] == 401


def test_a_disabled_user_loses_its_sign_ins_and_keys(world: World) -> None:
    c = world.collector
    admin = world.keys["acme-admin"]
    password = "a long enough password"
    status, user = call(
        c,
        admin,
        "POST",
        "/api/v1/users",
        {"email": "leaver@example.test", "password": password, "role": "operator"},
    )
    assert status == 201 and user["role"] == "operator"
    status, cookie, _ = sign_in(c, "leaver@example.test", password)
    assert status == 302 and page(c, "/", cookie)[0] == 200
    assert (
        call(c, world.keys["rival-admin"], "POST", f"/api/v1/users/{user['id']}/disable")[0] == 404
    )
    status, out = call(c, admin, "POST", f"/api/v1/users/{user['id']}/disable")
    assert status == 200 and out["disabled_at"] is not None
    assert page(c, "/", cookie)[0] == 302
    assert sign_in(c, "leaver@example.test", password)[0] == 401
    c.cli("user", "enable", "leaver@example.test")
    assert sign_in(c, "leaver@example.test", password)[0] == 302


@pytest.mark.parametrize("user", ["acme-admin", "acme-viewer", "museum"])
def test_signing_out_ends_the_session_on_the_server(world: World, user: str) -> None:
    c = world.collector
    status, cookie, _ = sign_in(c, world.email(user), world.passwords[user])
    assert status == 302
    assert post_form(c, "/logout", cookie, {})[0] == 302
    assert page(c, "/", cookie)[0] == 302


def test_enrollment_tokens_are_listed_and_revoked(world: World, tmp_path: object) -> None:
    c = world.collector
    admin = world.keys["acme-admin"]
    status, made = call(c, admin, "POST", "/api/v1/enrollment-tokens", {"uses": 2, "ttl": "1h"})
    assert status == 201 and made["token"].startswith("vgl_enr_")
    _, listed = call(c, admin, "GET", "/api/v1/enrollment-tokens")
    newest = listed["enrollment_tokens"][0]
    assert newest["uses_left"] == 2 and newest["revoked_at"] is None
    assert "token" not in newest and made["token"] not in str(listed)
    _, theirs = call(c, world.keys["rival-admin"], "GET", "/api/v1/enrollment-tokens")
    assert newest["id"] not in {t["id"] for t in theirs["enrollment_tokens"]}
    assert (
        call(c, world.keys["rival-admin"], "DELETE", f"/api/v1/enrollment-tokens/{newest['id']}")[0]
        == 404
    )
    assert call(c, admin, "DELETE", f"/api/v1/enrollment-tokens/{newest['id']}")[0] == 200
    agent = Agent(c.data_dir.parent / "late-agent")
    out = agent.cmd("enroll", "--collector", c.url, "--token", made["token"], check=False)
    assert out.returncode != 0 and "revoked" in (out.stderr + out.stdout)


def test_partner_keys_made_before_accounts_are_the_service_accounts(world: World) -> None:
    status, me = call(world.collector, world.keys["acme"], "GET", "/api/v1/me")
    assert status == 200 and me["role"] == "admin" and me["partner"] == "acme"
    assert me["email"].endswith(".invalid")
    listed = world.collector.cli("user", "list", "--partner", "acme")
    assert "service-account.partner-" in listed and world.email("museum") in listed


def _sign_in_with_code(world: World, email: str, password: str, code: str) -> int:
    from harness.net import http_no_redirect
    from tests.portal.world import csrf_of, set_cookies

    c = world.collector
    _, headers, body = http_no_redirect("GET", c.url + "/login")
    csrf_cookie = set_cookies(headers)["vigil_csrf"].split(";", 1)[0]
    form = urllib.parse.urlencode(
        {"csrf": csrf_of(body), "email": email, "password": password, "code": code}
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie}
    return http_no_redirect("POST", c.url + "/login", form, headers)[0]


def test_two_step_sign_in_needs_a_fresh_code(world: World) -> None:
    c = world.collector
    email, password = "twostep@example.test", "correct horse battery"
    status, _ = call(
        c,
        world.keys["acme-admin"],
        "POST",
        "/api/v1/users",
        {"email": email, "password": password, "role": "viewer"},
    )
    assert status == 201
    address = c.last_line("user", "totp", email)
    assert address.startswith("otpauth://totp/Vigil:")
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(address).query)["secret"][0]
    assert _sign_in_with_code(world, email, password, "") == 401
    assert _sign_in_with_code(world, email, password, "000000") in (401, 302)
    code = pyotp.TOTP(secret).now()
    assert _sign_in_with_code(world, email, "wrong password!", code) == 401
    assert _sign_in_with_code(world, email, password, code) == 302
    assert _sign_in_with_code(world, email, password, code) == 401, "a code is good once"
    c.cli("user", "totp", email, "--off")
    assert _sign_in_with_code(world, email, password, "") == 302


def test_the_vendor_organisation_takes_no_customers(world: World) -> None:
    c = world.collector
    out = c.cli("org", "add", "Stray Museum", "--customer-of", VENDOR, check=False)
    assert "the vendor organisation has no customers" in out
    with collector_sql(c.data_dir, c.env) as conn:
        found = conn.execute("SELECT count(*) FROM customers WHERE name = 'Stray Museum'")
        assert found.fetchone()[0] == 0

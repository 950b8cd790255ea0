"""Password reset by a one-time link sent by mail (``[mail]``).

"Forgot your password?" takes an e-mail address and answers the same page whether an
account has it or not; the mail, when there is one, is sent after the answer, so the
time of the answer tells nothing either. The link (``[mail] public_url`` and a random
token, never the request's Host) works once and for ``[mail] reset_ttl_s``; only the
token's hash is stored (:mod:`collector.accounts.resets`). Both forms are rate-limited
per source address and per address asked for (or link tried), like the sign-in.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from collector.accounts import passwords, resets
from collector.accounts.mail import MailConfig, reset_mail
from collector.http import paths
from collector.http.appkeys import CONFIG, DB, METRICS
from collector.http.auth import limited_for, note_failure
from collector.http.pages import open_form, open_form_ok
from collector.http.ratelimit import credential_key
from collector.notify.email import deliver

log = logging.getLogger("vigil.collector.mail")
_SENDING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("vigil.reset_mails", set)
SENT = (
    "If an account has this address, a mail with a link to choose a new password is on "
    "its way. The link works once."
)


def _mail(request: web.Request) -> MailConfig:
    cfg = request.app[CONFIG].mail
    if not cfg.enabled:
        raise web.HTTPNotFound(reason="this collector sends no mail: ask your administrator")
    return cfg


def _limited(request: web.Request, credential: str) -> web.Response | None:
    wait = limited_for(request, (credential,))
    if wait is None:
        return None
    request.app[METRICS].rejected("rate_limited")
    resp = open_form(
        request,
        "forgot.html",
        429,
        error=f"Too many attempts. Try again in {wait} seconds.",
    )
    resp.headers["Retry-After"] = str(wait)
    return resp


async def forgot_form(request: web.Request) -> web.Response:
    _mail(request)
    return open_form(request, "forgot.html")


async def _send(cfg: MailConfig, to: str, token: str) -> None:
    link = f"{cfg.public_url.rstrip('/')}/reset-password?{urllib.parse.urlencode({'t': token})}"
    msg = reset_mail(cfg, to, link, cfg.reset_ttl_s)
    try:
        await asyncio.to_thread(deliver, cfg.smtp(), cfg.password, msg)
    except (smtplib.SMTPException, OSError, ssl.SSLError, ValueError) as exc:
        log.warning("password-reset mail not sent: %s: %s", type(exc).__name__, exc)


async def forgot(request: web.Request) -> web.Response:
    cfg = _mail(request)
    form = await request.post()
    if not open_form_ok(request, form):
        return open_form(request, "forgot.html", 403, error="The form expired; try again.")
    email = str(form.get("email", "")).strip().lower()[:254]
    if "@" not in email:
        return open_form(request, "forgot.html", 400, error="Enter the e-mail address.")
    credential = credential_key("reset", email)
    refused = _limited(request, credential)
    if refused is not None:
        return refused
    note_failure(request, (credential,))  # every request counts: each may send a mail
    now = time.time()
    token = await request.app[DB].write(
        lambda c: resets.issue(c, email, now, float(cfg.reset_ttl_s))
    )
    if token is not None:
        task = asyncio.create_task(_send(cfg, email, token))
        request.app[_SENDING].add(task)
        task.add_done_callback(request.app[_SENDING].discard)
    return open_form(request, "forgot.html", sent=SENT)


def _token(data: Any) -> str:
    token = str(data.get("t", ""))
    return token if 20 <= len(token) <= 100 else ""


async def reset_form(request: web.Request) -> web.Response:
    _mail(request)
    token, now = _token(request.query), time.time()
    ok = bool(token) and await request.app[DB].read(lambda c: resets.valid(c, token, now))
    if not ok:
        return open_form(request, "reset.html", 400, bad_link=True)
    return open_form(request, "reset.html", token=token)


async def reset(request: web.Request) -> web.Response:
    _mail(request)
    form = await request.post()
    token = _token(form)
    if not open_form_ok(request, form):
        return open_form(request, "reset.html", 403, token=token, error="The form expired.")
    credential = credential_key("reset-link", token[:12])
    refused = _limited(request, credential)
    if refused is not None:
        return refused
    password = str(form.get("password", ""))
    if password != str(form.get("again", "")):
        return open_form(request, "reset.html", 400, token=token, error="The two differ.")
    try:
        passwords.check_new(password)
    except passwords.WeakPassword as exc:
        return open_form(request, "reset.html", 400, token=token, error=str(exc))
    hashed = await asyncio.to_thread(passwords.hash_password, password)
    now = time.time()
    done = bool(token) and await request.app[DB].write(
        lambda c: resets.redeem(c, token, hashed, now)
    )
    if not done:
        note_failure(request, (credential,))
        return open_form(request, "reset.html", 400, bad_link=True)
    return open_form(request, "reset.html", changed=True)


async def _mails(app: web.Application) -> AsyncIterator[None]:
    app[_SENDING] = set()
    yield
    sending: set[asyncio.Task[None]] = app[_SENDING]
    if sending:  # mails being sent finish (each within the SMTP timeout)
        await asyncio.wait(sending, timeout=30)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_mails)
    app.router.add_get(paths.FORGOT_PASSWORD_PAGE, forgot_form)
    app.router.add_post(paths.FORGOT_PASSWORD_PAGE, forgot)
    app.router.add_get(paths.RESET_PASSWORD_PAGE, reset_form)
    app.router.add_post(paths.RESET_PASSWORD_PAGE, reset)

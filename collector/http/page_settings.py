"""The settings page: one's own account and API keys; for a partner's admin also the users
and their roles, enrollment tokens and the partner's backup policy (others read them).

A new API key or enrollment token is shown once, on the page that answers its form; only
its hash is kept. Every change is a form POST with the sign-in's CSRF token, checked by
role (:mod:`collector.accounts.roles`) and kept inside the user's partner.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from collector.accounts import api as accounts_api
from collector.accounts import store
from collector.backups import catalog, promise
from collector.backups.errors import BackupRefused, BreaksPromise
from collector.backups.policy import BackupPolicy, effective, format_duration
from collector.durations import parse_interval
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import PartnerIdentity
from collector.http.errors import ApiError
from collector.http.pages import checked_form, render, signed_in
from protocol.backup_window import check_window

_KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def _settings_data(conn: Any, identity: PartnerIdentity) -> dict[str, Any]:
    partner_wide = identity.customer is None
    own_keys = store.list_keys(conn, identity.partner_id, identity.user_id)
    data: dict[str, Any] = {"own_keys": own_keys, "partner_wide": partner_wide}
    if partner_wide:
        stored = catalog.get_policy(conn, "partner", str(identity.partner_id))
        policy = effective(stored, None)
        data.update(
            users=store.list_users(conn, identity.partner_id),
            customers=store.list_customers(conn, identity.partner_id),
            all_keys=store.list_keys(conn, identity.partner_id),
            tokens=store.list_tokens(conn, identity.partner_id),
            policy=policy,
            policy_interval=format_duration(int(policy.interval_s or 0)),
            policy_override=catalog.get_override(conn, "partner", str(identity.partner_id)),
        )
    return data


async def _page(
    request: web.Request, identity: PartnerIdentity, status: int = 200, **extra: Any
) -> web.Response:
    data = await request.app[DB].read(lambda c: _settings_data(c, identity))
    resp = render(
        "settings.html",
        request,
        tab="settings",
        admin=identity.role == "admin" and identity.customer is None,
        roles=store.ROLES,
        keep=_KEEP,
        **{**data, **extra},
    )
    resp.set_status(status)
    return resp


async def settings_page(request: web.Request) -> web.Response:
    identity = signed_in(request)
    return await _page(request, identity, done=request.query.get("done", "")[:40])


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ApiError(404, "not_found", "no such object")
    return int(raw)


async def create_key(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    key = await accounts_api.create_key_for(request, identity, str(form.get("label", ""))[:100])
    return await _page(request, identity, 201, new_secret=key, new_what="API key")


async def revoke_key(request: web.Request) -> web.Response:
    await checked_form(request)
    identity = signed_in(request)
    kid = _id(request, "key_id")
    owner = None if identity.role == "admin" and identity.customer is None else identity.user_id
    done = await request.app[DB].write(
        lambda c: store.revoke_key(c, identity.partner_id, kid, owner)
    )
    if not done:
        raise ApiError(404, "not_found", "no such active API key")
    raise web.HTTPSeeOther(f"{paths.SETTINGS_PAGE}?done=key+revoked")


async def add_user(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    fields = {k: str(form.get(k, "")) for k in ("email", "password", "role", "customer")}
    try:
        user = await accounts_api.add_user(request, identity, fields)
    except ApiError as exc:
        if exc.status != 400:
            raise
        return await _page(request, identity, 400, error=exc.message)
    raise web.HTTPSeeOther(f"{paths.SETTINGS_PAGE}?done=user+{user.id}+added")


async def user_state(request: web.Request) -> web.Response:
    await checked_form(request)
    identity = signed_in(request)
    uid = _id(request, "user_id")
    action = request.match_info["action"]
    if action not in ("disable", "enable"):
        raise ApiError(404, "not_found", "no such action")
    if uid == identity.user_id:
        raise ApiError(409, "conflict", "an admin cannot disable itself")
    done = await request.app[DB].write(
        lambda c: store.set_disabled(c, identity.partner_id, uid, action == "disable")
    )
    if not done:
        raise ApiError(404, "not_found", "no such user")
    raise web.HTTPSeeOther(f"{paths.SETTINGS_PAGE}?done=user+{action}d")


async def create_token(request: web.Request) -> web.Response:
    form = await checked_form(request)
    identity = signed_in(request)
    try:
        uses = int(str(form.get("uses", "1"))[:6])
    except ValueError:
        uses = 0
    try:
        token = await accounts_api.create_token_for(
            request, identity, uses, str(form.get("ttl", "24h"))
        )
    except ApiError as exc:
        if exc.status != 400:
            raise
        return await _page(request, identity, 400, error=exc.message)
    return await _page(request, identity, 201, new_secret=token, new_what="enrollment token")


async def revoke_token(request: web.Request) -> web.Response:
    await checked_form(request)
    identity = signed_in(request)
    tid = _id(request, "token_id")
    done = await request.app[DB].write(lambda c: store.revoke_token(c, identity.partner_id, tid))
    if not done:
        raise ApiError(404, "not_found", "no such active enrollment token")
    raise web.HTTPSeeOther(f"{paths.SETTINGS_PAGE}?done=token+revoked")


def _policy_from_form(form: Any) -> BackupPolicy:
    """The partner's backup policy from the form (ValueError names the bad field)."""
    keep: dict[str, int] = {}
    for name in _KEEP:
        raw = str(form.get(name, "")).strip()
        value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else -1
        if value < 0:
            raise ValueError(f"{name.replace('_', ' ')} must be a whole number, 0 or more")
        keep[name] = value
    interval = parse_interval(str(form.get("interval", ""))[:20])
    window = check_window(str(form.get("window", "")).strip()[:20])
    return BackupPolicy(interval_s=interval, window=window, **keep)


async def set_policy(request: web.Request) -> web.Response:
    """Store the partner's policy; one that breaks a contract's promise comes back as a
    form error naming each promise, with the override (a reason) offered."""
    form = await checked_form(request)
    identity = signed_in(request)
    try:
        policy = _policy_from_form(form)
    except ValueError as exc:
        return await _page(request, identity, 400, error=f"Backup policy: {exc}")
    # The reason field is offered only with a refusal; empty means no override.
    override = str(form.get("override_contract", "")).strip() or None
    try:
        await request.app[DB].write(
            lambda c: promise.store_policy(
                c, "partner", str(identity.partner_id), policy, time.time(), override
            )
        )
    except BreaksPromise as exc:
        shown = effective(policy, None)
        return await _page(
            request,
            identity,
            409,
            error="Backup policy refused: it breaks the contract's promise.",
            policy_breaks=exc.extra["breaks"],
            policy=shown,
            policy_interval=format_duration(int(shown.interval_s or 0)),
        )
    except BackupRefused as exc:
        return await _page(request, identity, 400, error=f"Backup policy: {exc.message}")
    raise web.HTTPSeeOther(f"{paths.SETTINGS_PAGE}?done=backup+policy+saved")


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(paths.SETTINGS_PAGE, settings_page)
    r.add_post(paths.SETTINGS_API_KEYS, create_key)
    r.add_post(paths.SETTINGS_API_KEY_REVOKE, revoke_key)
    r.add_post(paths.SETTINGS_USERS, add_user)
    r.add_post(paths.SETTINGS_USER_ACTION, user_state)
    r.add_post(paths.SETTINGS_TOKENS, create_token)
    r.add_post(paths.SETTINGS_TOKEN_REVOKE, revoke_token)
    r.add_post(paths.SETTINGS_BACKUP_POLICY, set_policy)

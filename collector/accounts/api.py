"""The accounts' JSON API under ``/api/v1/``: who am I, users, API keys, enrollment tokens.

The auth middleware has identified the caller and checked its role's level
(:mod:`collector.accounts.roles`); the handlers here keep every read and change inside
the caller's partner, and a key of another user is the admin's business only. Objects of
another organisation answer 404, as if they did not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from collector import secrets_store
from collector.accounts import passwords, store
from collector.durations import parse_duration
from collector.http import openapi, paths
from collector.http.appkeys import DB
from collector.http.auth import PartnerIdentity, partner_of
from collector.http.errors import ApiError

MAX_TOKEN_USES = 10_000
MAX_TOKEN_TTL_S = 90 * 86400.0


def me_json(identity: PartnerIdentity) -> dict[str, Any]:
    return {
        "user_id": identity.user_id,
        "email": identity.email,
        "role": identity.role,
        "partner": identity.name,
        "customer": identity.customer,
    }


def _admin(identity: PartnerIdentity) -> None:
    if identity.role != "admin" or identity.customer is not None:
        raise ApiError(403, "forbidden", "only a partner's admin may do this")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body is not a JSON object")
    return data


def _text(data: dict[str, Any], name: str, limit: int = 254, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise ApiError(
            400, "invalid_field", f"{name} must be text of 1 to {limit} characters", name
        )
    return value


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return int(raw)


async def add_user(
    request: web.Request, identity: PartnerIdentity, data: dict[str, Any]
) -> store.User:
    """Shared by the API and the settings page: a new user of the admin's partner."""
    _admin(identity)
    email = _text(data, "email")
    password = _text(data, "password", passwords.MAX_LENGTH)
    role = _text(data, "role", 20)
    customer = _text(data, "customer", 200, required=False).strip() or None
    try:
        passwords.check_new(password)
    except passwords.WeakPassword as exc:
        raise ApiError(400, "invalid_field", str(exc), "password") from None
    hashed = await asyncio.to_thread(passwords.hash_password, password)

    def write(c: Any) -> store.User:
        cid = None if customer is None else store.add_customer(c, identity.partner_id, customer)
        return store.add_user(c, email, hashed, identity.partner_id, role, cid)

    try:
        return await request.app[DB].write(write)
    except store.AccountError as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None


@openapi.documented(openapi.operation("The caller: user, role, partner and customer"), schema="Me")
async def get_me(request: web.Request) -> web.Response:
    return web.json_response(me_json(partner_of(request)))


@openapi.documented(openapi.operation("The partner's users with roles"), schema="UserList")
async def list_users(request: web.Request) -> web.Response:
    identity = partner_of(request)
    users = await request.app[DB].read(lambda c: store.list_users(c, identity.partner_id))
    return web.json_response({"users": [u.to_json() for u in users], "count": len(users)})


@openapi.documented(
    openapi.operation("Add a user (admin): email, password, role, customer"),
    schema="User",
    status="201",
)
async def post_user(request: web.Request) -> web.Response:
    identity = partner_of(request)
    user = await add_user(request, identity, await _body(request))
    return web.json_response(user.to_json(), status=201)


@openapi.documented(openapi.operation("disable or enable a user (admin)"), schema="User")
async def user_state(request: web.Request) -> web.Response:
    identity = partner_of(request)
    _admin(identity)
    uid = _id(request, "user_id")
    action = request.match_info["action"]
    if action not in ("disable", "enable"):
        raise ApiError(404, "not_found", f"no user action {action!r}")
    if uid == identity.user_id:
        raise ApiError(409, "conflict", "an admin cannot disable itself")
    done = await request.app[DB].write(
        lambda c: store.set_disabled(c, identity.partner_id, uid, action == "disable")
    )
    if not done:
        raise ApiError(404, "not_found", "no such user")
    user = await request.app[DB].read(lambda c: store.get_user(c, identity.partner_id, uid))
    assert user is not None
    return web.json_response(user.to_json())


def _keys_of(identity: PartnerIdentity) -> int | None:
    """Whose keys the identity manages: everyone's of its partner (admin) or its own."""
    return None if identity.role == "admin" and identity.customer is None else identity.user_id


@openapi.documented(
    openapi.operation("API keys: the caller's own (an admin: all of the partner's), last used"),
    schema="ApiKeyList",
)
async def list_keys(request: web.Request) -> web.Response:
    identity = partner_of(request)
    keys = await request.app[DB].read(
        lambda c: store.list_keys(c, identity.partner_id, _keys_of(identity))
    )
    return web.json_response({"api_keys": keys, "count": len(keys)})


async def create_key_for(request: web.Request, identity: PartnerIdentity, label: str) -> str:
    def write(c: Any) -> str:
        user = store.get_user(c, identity.partner_id, identity.user_id)
        if user is None:
            raise ApiError(404, "not_found", "no such user")
        return store.create_key(c, user, label)

    return await request.app[DB].write(write)


@openapi.documented(
    openapi.operation("A new key of the caller, with its role (shown once)"),
    schema="ApiKeyCreated",
    status="201",
)
async def post_key(request: web.Request) -> web.Response:
    """A new key of the caller (shown once), with the caller's role."""
    identity = partner_of(request)
    data = await _body(request)
    label = _text(data, "label", 100, required=False)
    key = await create_key_for(request, identity, label)
    return web.json_response(
        {"key": key, "prefix": key[: len(secrets_store.APIKEY_PREFIX) + 6], "label": label},
        status=201,
    )


@openapi.documented(openapi.operation("Revoke a key (one's own; an admin: any)"), schema="Revoked")
async def delete_key(request: web.Request) -> web.Response:
    identity = partner_of(request)
    kid = _id(request, "key_id")
    done = await request.app[DB].write(
        lambda c: store.revoke_key(c, identity.partner_id, kid, _keys_of(identity))
    )
    if not done:
        raise ApiError(404, "not_found", "no such active API key")
    return web.json_response({"revoked": kid})


@openapi.documented(
    openapi.operation("The partner's enrollment tokens (never the token itself)"),
    schema="EnrollmentTokenList",
)
async def list_tokens(request: web.Request) -> web.Response:
    identity = partner_of(request)
    tokens = await request.app[DB].read(lambda c: store.list_tokens(c, identity.partner_id))
    return web.json_response({"enrollment_tokens": tokens, "count": len(tokens)})


async def create_token_for(
    request: web.Request, identity: PartnerIdentity, uses: object, ttl: object
) -> str:
    _admin(identity)
    if not isinstance(uses, int) or isinstance(uses, bool) or not 1 <= uses <= MAX_TOKEN_USES:
        raise ApiError(400, "invalid_field", f"uses must be 1..{MAX_TOKEN_USES}", "uses")
    try:
        ttl_s = parse_duration(str(ttl)[:20])
    except ValueError as exc:
        raise ApiError(400, "invalid_field", f"ttl: {exc}", "ttl") from None
    if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
        raise ApiError(400, "invalid_field", "ttl must be at most 90 days", "ttl")
    return await request.app[DB].write(
        lambda c: secrets_store.create_token(c, identity.partner_id, uses, ttl_s)
    )


@openapi.documented(
    openapi.operation("A new enrollment token (admin): uses, ttl (shown once)"),
    schema="EnrollmentTokenCreated",
    status="201",
)
async def post_token(request: web.Request) -> web.Response:
    identity = partner_of(request)
    data = await _body(request)
    token = await create_token_for(request, identity, data.get("uses", 1), data.get("ttl", "24h"))
    return web.json_response({"token": token}, status=201)


@openapi.documented(openapi.operation("Revoke an enrollment token (admin)"), schema="Revoked")
async def delete_token(request: web.Request) -> web.Response:
    identity = partner_of(request)
    _admin(identity)
    tid = _id(request, "token_id")
    done = await request.app[DB].write(lambda c: store.revoke_token(c, identity.partner_id, tid))
    if not done:
        raise ApiError(404, "not_found", "no such active enrollment token")
    return web.json_response({"revoked": tid})


async def _prepare_passwords(app: web.Application) -> AsyncIterator[None]:
    """The dummy password hash made in a thread while the server starts listening."""
    made = asyncio.get_running_loop().run_in_executor(None, passwords.prepare)
    yield
    await made


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_prepare_passwords)
    r = app.router
    r.add_get(paths.ME, get_me)
    r.add_get(paths.USERS, list_users)
    r.add_post(paths.USERS, post_user)
    r.add_post(paths.USER_ACTION, user_state)
    r.add_get(paths.API_KEYS, list_keys)
    r.add_post(paths.API_KEYS, post_key)
    r.add_delete(paths.API_KEY, delete_key)
    r.add_get(paths.ENROLLMENT_TOKENS, list_tokens)
    r.add_post(paths.ENROLLMENT_TOKENS, post_token)
    r.add_delete(paths.ENROLLMENT_TOKEN, delete_token)

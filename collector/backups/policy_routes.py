"""The partner's backup policy over the API: ``GET/PUT /api/v1/backup-policy``.

The policy is stored by :func:`collector.backups.promise.store_policy` as from the CLI and
the settings page, so a policy that breaks a contract's promise is refused (409
``breaks_contract``, each promise in ``breaks``) unless ``override_contract`` gives the
reason to run it anyway. A PUT changes only the fields it names.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from collector.backups import catalog, errors, promise
from collector.backups.policy import BackupPolicy, format_duration
from collector.durations import parse_interval
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import body_of, partner_of
from protocol.backup_window import check_window

PATH = paths.BACKUP_POLICY
MAX_BODY = 8192
_KEEP = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def policy_from_json(data: Any) -> tuple[BackupPolicy, str | None]:
    """The change and the override reason from a PUT body (``errors.Invalid`` naming the
    field at fault)."""
    if not isinstance(data, dict):
        raise errors.Invalid("invalid_body", "the body must be a JSON object")
    unknown = sorted(set(data) - {"interval", "window", "override_contract", *_KEEP})
    if unknown:
        raise errors.Invalid("invalid_field", f"unknown field {unknown[0]!r}", unknown[0])
    fields: dict[str, Any] = {}
    if data.get("interval") is not None:
        raw = data["interval"]
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError("a duration such as 6h, or whole seconds")
            fields["interval_s"] = parse_interval(str(raw)[:20])
        except ValueError as exc:
            raise errors.Invalid("invalid_field", f"interval: {exc}", "interval") from None
    if data.get("window") is not None:
        try:
            fields["window"] = check_window(str(data["window"])[:20])
        except ValueError as exc:
            raise errors.Invalid("invalid_field", f"window: {exc}", "window") from None
    for name in _KEEP:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100000:
            raise errors.Invalid("invalid_field", f"{name} must be a whole number 0..100000", name)
        fields[name] = value
    override = data.get("override_contract")
    if override is not None and not isinstance(override, str):
        raise errors.Invalid("invalid_field", "override_contract must be text", "override_contract")
    return BackupPolicy(**fields), override


def _shown(conn: Any, partner_id: int) -> dict[str, Any]:
    stored = catalog.get_policy(conn, "partner", str(partner_id)) or BackupPolicy()
    return {
        "interval_s": stored.interval_s,
        "interval": None if stored.interval_s is None else format_duration(stored.interval_s),
        "window": stored.window,
        **{k: getattr(stored, k) for k in _KEEP},
        "contract_override": catalog.get_override(conn, "partner", str(partner_id)),
    }


async def get_policy(request: web.Request) -> web.Response:
    pid = partner_of(request).partner_id
    return web.json_response(await request.app[DB].read(lambda c: _shown(c, pid)))


async def put_policy(request: web.Request) -> web.Response:
    pid = partner_of(request).partner_id
    raw = await body_of(request)
    if len(raw) > MAX_BODY:
        raise errors.TooLarge("body_too_large", f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise errors.Invalid("invalid_json", "the body is not JSON") from None
    changes, override = policy_from_json(data)

    def store(c: Any) -> dict[str, Any]:
        broken = promise.store_policy(c, "partner", str(pid), changes, time.time(), override)
        return {**_shown(c, pid), "breaks": broken}

    return web.json_response(await request.app[DB].write(store))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")

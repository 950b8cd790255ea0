"""HTTP endpoints for backups: the agent's upload protocol and the partner's read side.

Routing and HTTP details only; what the endpoints do is in :mod:`collector.backups.service`.
See ``docs/backup-storage.md`` for the protocol.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from collector.backups import catalog, errors, maintenance, policy_routes
from collector.backups.config import BackupConfig
from collector.backups.objectstore import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    S3ObjectStore,
    open_object_store,
)
from collector.backups.service import BackupService
from collector.backups.settings import agent_backup_settings
from collector.backups.staging import open_staging
from collector.entitlements import ENTITLEMENT_CHECK, backup_entitled
from collector.health import agent_settings
from collector.health.storage_health import (
    check_failed,
    register_probe,
    set_upload_reserve,
    writes_refused,
)
from collector.http import openapi
from collector.http.appkeys import CONFIG, DB
from collector.http.auth import Handler, agent_of, body_of, chunk_body_of, owned_server
from collector.http.errors import ApiError
from collector.supervision import TASKS
from protocol import routes
from protocol.backup_messages import ChunkAccepted, RunRecorded, reply_body

log = logging.getLogger(__name__)

MAX_ENVELOPE_BYTES = 64 * 1024
MAX_RUN_BYTES = 64 * 1024


BACKUPS: web.AppKey[BackupService] = web.AppKey("backups", BackupService)
STORE: web.AppKey[ObjectStore] = web.AppKey("backup_store", ObjectStore)


def _service(request: web.Request) -> BackupService:
    return request.app[BACKUPS]


_HTTP_STATUS: dict[type[errors.BackupRefused], int] = {
    errors.Invalid: 400,
    errors.BreaksPromise: 409,
    errors.NotEntitled: 403,
    errors.UploadNotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Mismatch: 422,
    errors.StorageUnavailable: 503,
    errors.StagingFull: 507,
}


def api_error(exc: errors.BackupRefused) -> ApiError:
    """The HTTP answer to a refusal of the backup service: the one place they are mapped."""
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    return ApiError(
        _HTTP_STATUS[type(exc)], exc.code, exc.message, exc.field, headers, exc.extra or None
    )


def _answers_refusals(handler: Handler) -> Handler:
    """Wrap an endpoint that calls the service: its refusals become HTTP errors."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.BackupRefused as exc:
            raise api_error(exc) from None

    return wrapped


def _json(status: int, body: dict) -> web.Response:
    return web.json_response(body, status=status)


def _op(summary: str, auth: str, body: str = "") -> dict[str, Any]:
    """An operation of this feature (path parameters come from the registered path)."""
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"agentSession": []}] if auth == "agent" else [{"partnerKey": []}],
        "responses": {
            "200": {"description": "OK"},
            "4XX": {
                "description": "Refused",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                },
            },
        },
    }
    if body:
        op["requestBody"] = {"required": True, "content": {body: {"schema": {}}}}
    return op


_PUT_CHUNK = _op("Send bytes at ?offset=N (<= chunk_size)", "agent", "application/octet-stream")
_PUT_CHUNK["parameters"] = [
    {"name": "offset", "in": "query", "required": True, "schema": {"type": "integer"}}
]

_GET_POLICY = openapi.documented(
    _op("The partner's backup policy and its override of a contract, if any", "partner"),
    schema="BackupPolicy",
)(policy_routes.get_policy)
_PUT_POLICY = openapi.documented(
    _op(
        "Change the partner's backup policy (fields named only); 409 breaks_contract "
        "lists the promises broken unless override_contract gives a reason",
        "partner",
        "application/json",
    ),
    schema="BackupPolicy",
)(_answers_refusals(policy_routes.put_policy))

# --- agent endpoints ----------------------------------------------------------------------


@openapi.documented(
    _op(
        "Open (201) or resume (200) an upload; record an unchanged backup",
        "agent",
        body="application/json",
    )
)
@_answers_refusals
async def begin_backup(request: web.Request) -> web.Response:
    agent = agent_of(request)
    body = await _body_within(request, MAX_ENVELOPE_BYTES, "envelope above")
    created, out = await _service(request).begin(agent.server_id, agent.public_key, body)
    return _json(201 if created else 200, out)


async def _body_within(request: web.Request, limit: int, refusal: str) -> bytes:
    """The signed body, refused with 413 "``refusal`` ``limit`` bytes" when larger."""
    body = await body_of(request)
    if len(body) > limit:
        raise ApiError(413, "too_large", f"{refusal} {limit} bytes")
    return body


def _offset(request: web.Request) -> int:
    raw = request.query.get("offset")
    try:
        value = int(raw) if raw is not None else -1
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(400, "invalid_field", "offset must be a non-negative integer", "offset")
    return value


@openapi.documented(_PUT_CHUNK)
@_answers_refusals
async def put_chunk(request: web.Request) -> web.Response:
    agent = agent_of(request)
    offset = _offset(request)
    body = await chunk_body_of(request)
    new = await _service(request).put_chunk(
        agent.server_id, request.match_info["upload_id"], offset, body
    )
    return _json(200, reply_body(ChunkAccepted(offset=new)))


@openapi.documented(_op("Offset received so far and expected size", "agent"))
@_answers_refusals
async def upload_state(request: web.Request) -> web.Response:
    agent = agent_of(request)
    state = await _service(request).upload_state(agent.server_id, request.match_info["upload_id"])
    return _json(200, state)


@openapi.documented(_op("Check size and SHA-256, store, record verified (201)", "agent"))
@_answers_refusals
async def complete_upload(request: web.Request) -> web.Response:
    agent = agent_of(request)
    body = await _body_within(request, MAX_ENVELOPE_BYTES, "an envelope is at most")
    out = await _service(request).complete(
        agent.server_id, request.match_info["upload_id"], body, agent.public_key
    )
    return _json(201, out)


@openapi.documented(
    _op(
        "A backup run's outcome (ok, unchanged, failed + reason)",
        "agent",
        body="application/json",
    )
)
@_answers_refusals
async def record_run(request: web.Request) -> web.Response:
    agent = agent_of(request)
    body = await _body_within(request, MAX_RUN_BYTES, "run report above")
    run_id = await _service(request).record_run(agent.server_id, body)
    return _json(201, reply_body(RunRecorded(id=run_id)))


# --- partner endpoints --------------------------------------------------------------------


@openapi.documented(_op("Stored backups", "partner"), schema="BackupList")
async def list_backups(request: web.Request) -> web.Response:
    server = await owned_server(request, request.match_info["server_id"])
    rows = await request.app[DB].read(lambda c: catalog.list_backups(c, server.id))
    return _json(200, {"backups": [b.public() for b in reversed(rows)]})


async def _backup(request: web.Request) -> catalog.Backup:
    server = await owned_server(request, request.match_info["server_id"])
    backup_id = request.match_info["backup_id"]
    if backup_id == "latest":  # the newest verified full backup (what a restore needs)
        rows = await request.app[DB].read(
            lambda c: catalog.list_backups(c, server.id, ("verified",))
        )
        full = [b for b in rows if b.kind == "full"]
        if not full:
            raise ApiError(404, "not_found", "this server has no stored backup")
        return full[-1]
    b = await request.app[DB].read(lambda c: catalog.get_backup(c, server.id, backup_id))
    if b is None or b.status not in catalog.LISTED_STATUSES:
        raise ApiError(404, "not_found", f"no backup {backup_id!r} of this server")
    return b


@openapi.documented(_op("The signed envelope (backup_id or latest)", "partner"))
async def get_envelope(request: web.Request) -> web.Response:
    b = await _backup(request)
    return web.Response(body=b.envelope.encode(), content_type="application/json")


def _range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, length) of a satisfiable single Range, None for the whole object."""
    if "Range" not in request.headers:
        return None
    try:
        rng = request.http_range
    except ValueError:
        raise ApiError(416, "range_not_satisfiable", "malformed Range header") from None
    start, stop = rng.start, rng.stop
    if start is None and stop is None:
        return None
    if start is None:
        start = 0
    if start < 0:  # suffix: the last N bytes
        start = max(0, size + start)
        stop = size
    if stop is None or stop > size:
        stop = size
    if start >= size or stop <= start:
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"range outside the object's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, stop - start


@openapi.documented(_op("The age file, streamed; Range supported", "partner"))
async def get_object(request: web.Request) -> web.StreamResponse:
    b = await _backup(request)
    if b.kind != "full" or not b.object_key:
        raise ApiError(
            404,
            "not_found",
            f"backup {b.id} is an unchanged record; its data is backup seq {b.base_seq}",
        )
    store = request.app[STORE]
    size = b.size
    rng = _range(request, size)
    start, length = (0, size) if rng is None else rng
    resp = web.StreamResponse(status=200 if rng is None else 206)
    resp.content_type = "application/octet-stream"
    resp.content_length = length
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["ETag"] = f'"{b.sha256}"'
    resp.headers["Content-Disposition"] = f'attachment; filename="{b.id}.age"'
    if rng is not None:
        resp.headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    chunks = store.get(b.object_key, start, length)
    try:
        first = await anext(chunks, b"")
    except ObjectNotFound:
        raise ApiError(
            410, "object_missing", "the stored object is missing; run `backup check`"
        ) from None
    except ObjectStoreError:
        raise ApiError(
            503,
            "storage_unavailable",
            "backup storage unreachable now; retry later",
            headers={"Retry-After": "60"},
        ) from None
    await resp.prepare(request)
    sent = 0
    try:
        if first:
            await resp.write(first)
            sent += len(first)
        async for chunk in chunks:
            await resp.write(chunk)
            sent += len(chunk)
    except ObjectStoreError as exc:
        log.error("download of backup %s broke off: %s", b.id, exc)
        raise ConnectionResetError("object store failed mid-download") from exc
    except ConnectionError:
        # The client went away (closed the window, a timeout, a Range probe): nothing is
        # wrong here, and there is no one left to answer.
        log.info(
            "download of backup %s closed by the client after %d of %d bytes", b.id, sent, length
        )
        return resp
    finally:
        await chunks.aclose()
    await resp.write_eof()
    return resp


@openapi.documented(
    _op("Last success, last failure with reason, next due", "partner"), schema="BackupStatus"
)
async def backup_status(request: web.Request) -> web.Response:
    server = await owned_server(request, request.match_info["server_id"])
    return _json(200, await _service(request).status(server.id))


@openapi.documented(_op("The agent's enrolled Ed25519 public key", "partner"), schema="PublicKey")
async def public_key(request: web.Request) -> web.Response:
    import base64

    server = await owned_server(request, request.match_info["server_id"])
    return _json(200, {"public_key": base64.b64encode(bytes(server.public_key)).decode()})


# --- lifecycle ----------------------------------------------------------------------------


async def settings_provider(app: web.Application, server_id: str) -> dict[str, Any]:
    """Backup fields of ``AgentSettings``; ``backup_entitled`` also asks the hook."""
    fields = await agent_backup_settings(app[DB], server_id)
    fields["backup_streaming"] = True  # this collector completes streamed uploads
    check = app.get(ENTITLEMENT_CHECK)
    if fields["backup_entitled"] and check is not None and check is not backup_entitled:
        fields["backup_entitled"] = (await check(app[DB], server_id)).entitled
    return fields


async def run_maintenance(app: web.Application, now: float | None = None) -> None:
    """One round: expire uploads, prune by retention, re-check objects due for it."""
    cfg = app[_CONFIG]
    svc = app[BACKUPS]
    now = time.time() if now is None else now
    await svc.expire_uploads(now)
    await app[STORE].sweep()
    store = app[STORE]
    if isinstance(store, S3ObjectStore):
        try:
            await store.abort_stale_multipart(cfg.limits.upload_ttl_s)
        except ObjectStoreError as exc:  # the store's own trouble: /healthz reports it
            log.warning("cannot abort stale multipart uploads now: %s", exc)
    await maintenance.prune(app[DB], app[STORE])
    if cfg.integrity_every_s > 0:
        report = await maintenance.check_integrity(
            app[DB], app[STORE], older_than_s=cfg.integrity_every_s, now=now
        )
        if report.corrupt:
            log.error("integrity pass: %d damaged backups", len(report.corrupt))
    cutoff = now - cfg.runs_keep_s
    await app[DB].write(lambda c: catalog.prune_runs(c, cutoff))


_CONFIG: web.AppKey[BackupConfig] = web.AppKey("backup_config", BackupConfig)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    collector_cfg = app[CONFIG]
    cfg = collector_cfg.backup
    store = open_object_store(cfg.storage, collector_cfg.data_dir)
    app[_CONFIG] = cfg
    app[STORE] = store
    app[BACKUPS] = BackupService(
        app[DB],
        store,
        collector_cfg.data_dir,
        cfg.limits,
        entitlement=app.get(ENTITLEMENT_CHECK, backup_entitled),
        staging=open_staging(cfg.staging, store, collector_cfg.data_dir),
    )

    register_probe(app, "object_store", store.probe)
    set_upload_reserve(app, cfg.upload_reserve)
    handle = app[TASKS].every(
        "backup-maintenance",
        cfg.maintenance_interval_s,
        lambda: run_maintenance(app),
        first_delay_s=0,
        # An unreachable store is reported by /healthz; the task waits for it rather
        # than counting failures that would stop the collector.
        paused_when=lambda: writes_refused(app) or check_failed(app, "object_store"),
    )
    # Every process: what a killed complete left on this process's own disk.
    own_files = app[TASKS].every(
        "upload-files",
        cfg.maintenance_interval_s,
        lambda: app[BACKUPS].sweep_own_files(),
        first_delay_s=0,
        paused_when=lambda: writes_refused(app),
        everywhere=True,
    )
    yield
    await own_files.stop()
    await handle.stop()
    await store.close()


def setup(app: web.Application) -> None:
    """Add the backup endpoints, the store's lifecycle and the settings provider (the
    registry is set up by the features before it)."""
    r = app.router
    r.add_post(routes.BACKUPS, begin_backup)
    r.add_put(routes.BACKUP_UPLOAD, put_chunk)
    r.add_get(routes.BACKUP_UPLOAD, upload_state)
    r.add_post(routes.BACKUP_UPLOAD_COMPLETE, complete_upload)
    r.add_post(routes.BACKUP_RUNS, record_run)
    r.add_get(routes.SERVER_BACKUPS, list_backups)
    r.add_get(routes.SERVER_BACKUP_ENVELOPE, get_envelope)
    r.add_get(routes.SERVER_BACKUP_OBJECT, get_object)
    r.add_get(routes.SERVER_BACKUP_STATUS, backup_status)
    r.add_get(routes.SERVER_PUBLIC_KEY, public_key)
    r.add_get(policy_routes.PATH, _GET_POLICY)
    r.add_put(policy_routes.PATH, _PUT_POLICY)
    app.cleanup_ctx.append(_lifecycle)
    app[agent_settings.PROVIDERS].append(settings_provider)

"""The collector's aiohttp application: middlewares, routes, resources and their lifecycle."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from collector import entitlements
from collector.accounts import api as accounts_api
from collector.backups import handlers as backup_handlers
from collector.config import CollectorConfig
from collector.contracts import routes as contract_routes
from collector.health import feature as health_feature
from collector.health.fleet import FleetView, status_counts
from collector.health.storage_health import health_context, healthz, open_storage
from collector.http import openapi, pages, paths, replay
from collector.http.appkeys import CONFIG, DB, LIMITS, METRICS, NONCES, SEALER
from collector.http.auth import Handler
from collector.http.errors import ApiError
from collector.http.front_door import front_door
from collector.http.metrics import CONTENT_TYPE, Metrics
from collector.http.ratelimit import AuthLimits
from collector.http.request_limits import BodyTooSlow
from collector.http.session_cache import SESSIONS, SessionCache
from collector.http.session_keys import SessionSealer, load_key
from collector.notify import feature as notify_feature
from collector.storage import Database, open_database, storage_errors
from collector.supervision import TASKS, Supervisor, stop_tasks
from collector.task_leases import TaskLeases
from protocol import routes
from protocol.messages import ErrorBody, encode

log = logging.getLogger("vigil.collector")

MAX_BODY = 9 * 1024 * 1024
"""aiohttp's own cap on any body; each endpoint checks its own, smaller limit."""

_REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> web.Response:
    body = encode(ErrorBody(error=code, message=message, field=field))
    if extra:
        merged = json.loads(body)
        merged.update(extra)
        body = json.dumps(merged).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if pages.is_page(request):
            resp = pages.error_page(request, exc.status, exc.message, exc.headers, exc.code)
        else:
            resp = _error(exc.status, exc.code, exc.message, exc.field, exc.headers, exc.extra)
        if exc.status == 413:  # the body was not read: do not wait for the rest of it
            request.app[METRICS].rejected("too_large")
            resp.force_close()
        return resp
    except web.HTTPRequestEntityTooLarge as exc:
        request.app[METRICS].rejected("too_large")
        resp = _error(413, "too_large", exc.text or "request body too large")
        resp.force_close()
        return resp
    except BodyTooSlow:
        request.app[METRICS].rejected("too_slow")
        resp = _error(
            408,
            "request_timeout",
            "the request body did not arrive in time; the connection is closed",
        )
        resp.force_close()
        return resp
    except web.HTTPException as exc:
        if exc.status < 400 or exc.empty_body:
            raise
        code = _REASONS.get(exc.status, "http_error")
        keep = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        if pages.is_page(request):
            return pages.error_page(request, exc.status, exc.reason, keep, code)
        return _error(exc.status, code, exc.reason, headers=keep)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except UnicodeError as exc:
        # Text a client sent that is not UTF-8 (a form field, a file): its fault, not ours.
        log.info("undecodable input in %s %s: %s", request.method, request.path, exc)
        return _error(400, "invalid_encoding", "the request contains text that is not UTF-8")
    except RecursionError:
        log.info("input nested too deeply in %s %s", request.method, request.path)
        return _error(400, "nested_too_deeply", "the request body is nested too deeply")
    except storage_errors() as exc:
        # The collector's storage failed (disk full, I/O error, locked too long): not the
        # client's fault, and nothing was stored; the agent keeps the data and retries.
        log.error("storage error in %s %s: %s", request.method, request.path, exc)
        request.app[METRICS].rejected("storage_unavailable")
        return _error(
            503,
            "storage_unavailable",
            "the collector cannot store data right now; retry later",
            headers={"Retry-After": "30"},
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error(
            500, "internal_error", "the collector failed to handle this request; it is logged"
        )


@openapi.documented(
    openapi.operation("Prometheus metrics (Bearer token if [metrics] token is set)", auth=None)
)
async def metrics_handler(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    if cfg.metrics_token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), cfg.metrics_token.encode()
        ):
            request.app[METRICS].rejected("metrics_token")
            raise ApiError(
                401,
                "unauthenticated",
                "this collector's metrics need Authorization: Bearer <[metrics] token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
    views = await request.app[DB].read(
        lambda c: FleetView(c, cfg.report_interval_s, cfg.offline_after_intervals).all(None)
    )
    m = request.app[METRICS]
    m.set_servers_by_status(status_counts(views))
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


def _share_tasks(app: web.Application, db: Database) -> None:
    """On PostgreSQL several collector processes may serve one database: each scheduled
    task runs in the process holding its lease. SQLite is one process (its data
    directory's lock), which runs every task itself."""
    if db.dialect == "postgresql":
        app[TASKS].leases = TaskLeases(lambda: app[DB], app[CONFIG].task_lease_s)


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = open_storage(app[CONFIG], open_database)
    app[DB] = db
    _share_tasks(app, db)
    yield
    # Writes already queued are finished before the file is closed.
    await db.aclose()


FEATURES: tuple[Callable[[web.Application], None], ...] = (
    health_feature.setup,  # first: the agent-settings registry the others add to
    openapi.setup,  # before the features that add their paths to the document
    pages.setup,
    accounts_api.setup,
    backup_handlers.setup,
    contract_routes.setup,
    entitlements.setup,  # joins contracts and backups, sets the backup check
    notify_feature.setup,
)
"""Each feature adds its routes, background work and cleanup contexts, in this order."""


def create_app(config: CollectorConfig, database: Database | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, front_door],
        client_max_size=MAX_BODY,
    )
    app[CONFIG] = config
    app[TASKS] = Supervisor(
        retry_max_s=config.task_retry_max_s, give_up_after=config.task_give_up_after
    )
    app.cleanup_ctx.append(stop_tasks)
    app[METRICS] = Metrics()
    app[NONCES] = replay.NonceStore(app, 2 * config.max_clock_skew_s)
    app[LIMITS] = AuthLimits(config.rate_limits)
    app[SEALER] = SessionSealer(load_key(config.data_dir, config.session_key_file))
    app[SESSIONS] = SessionCache()
    if database is not None:
        app[DB] = database
        _share_tasks(app, database)
    else:
        app.cleanup_ctx.append(_database)
        app.cleanup_ctx.append(health_context)
    app.cleanup_ctx.append(replay.pruning)
    app.router.add_get(routes.HEALTHZ, healthz)
    app.router.add_get(paths.METRICS, metrics_handler)
    for setup in FEATURES:
        setup(app)
    return app

"""Partner API of the contract engine, under ``/api/v1/`` (Bearer API key; the auth
middleware has checked it before any handler here runs), and the scheduled check run.

A partner sees and changes only contracts whose ``partner`` is its own name, and only the
incidents and findings of those. Everything a client sends is validated; a refusal is an
``ApiError`` (4xx), never a 500.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from collector.accounts import vendor
from collector.contracts import inputs, service
from collector.contracts import repository as repo
from collector.contracts.calendar import CalendarError
from collector.contracts.importer import (
    ImportFailed,
    _RowInvalid,
    contract_from_row,
    detect_format,
    parse_contracts,
    plan_import,
)
from collector.contracts.incidents import (
    Action,
    TransitionError,
    apply,
    incident_to_json,
    open_incident,
)
from collector.contracts.openapi_paths import OPENAPI_PATHS
from collector.contracts.plans import get_plan
from collector.contracts.pricing import edition_upgrade, sma_quote
from collector.contracts.report_cache import REPORT_CACHE
from collector.contracts.report_cache import setup as report_cache_setup
from collector.contracts.report_pdf import render_pdf
from collector.contracts.reports import render_csv, render_json_document
from collector.contracts.sla import due_times
from collector.contracts.views import contract_view, parse_month
from collector.health.storage_health import writes_refused
from collector.http import paths
from collector.http.appkeys import CONFIG, DB
from collector.http.auth import owned_server, partner_of
from collector.http.errors import ApiError
from collector.http.openapi import EXTRA_PATHS
from collector.supervision import TASKS

log = logging.getLogger(__name__)


CHECK_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("contract_check_task", asyncio.Task)


# --- contracts -------------------------------------------------------------------------------


async def list_contracts(request: web.Request) -> web.Response:
    partner = partner_of(request)
    contracts = await request.app[DB].read(lambda c: repo.current_contracts(c, partner.name))
    chosen = inputs.page(request, sorted(contracts.values(), key=lambda c: c.id))
    chosen = await request.app[DB].read(lambda c: repo.with_enrollment_dates(c, chosen))
    rows = [contract_view(c) for c in chosen]
    return web.json_response({"contracts": rows, "count": len(rows)})


async def _own_contract(request: web.Request, contract_id: str) -> Any:
    partner = partner_of(request)
    c = await request.app[DB].read(lambda conn: repo.get_contract(conn, partner.name, contract_id))
    if c is None:
        raise ApiError(404, "not_found", f"no contract {contract_id!r}")
    return c


async def get_contract(request: web.Request) -> web.Response:
    cid = request.match_info["contract_id"]
    c = await _own_contract(request, cid)
    partner = partner_of(request)
    hist = await request.app[DB].read(lambda conn: repo.history_json(conn, partner.name, cid))
    (c,) = await request.app[DB].read(lambda conn: repo.with_enrollment_dates(conn, [c]))
    return web.json_response({"contract": contract_view(c), "history": hist})


async def put_contract(request: web.Request) -> web.Response:
    """Create or change one contract; the body has the TOML/CSV keys (``contract_id``
    taken from the path, ``partner`` always the caller)."""
    partner = partner_of(request)
    cid = request.match_info["contract_id"]
    data = await inputs.json_body(request)
    data["contract_id"] = cid
    data["partner"] = partner.name
    try:
        contract = contract_from_row(data, "|;")
    except _RowInvalid as exc:
        raise ApiError(400, "invalid_field", exc.message, exc.field) from None
    except (TypeError, ValueError, CalendarError) as exc:
        raise ApiError(400, "invalid_field", str(exc)) from None

    def write(conn: Any) -> tuple[bool, int | None]:
        old = repo.get_contract(conn, partner.name, cid)
        if old == contract:
            return False, None
        return True, repo.record_version(conn, cid, partner.name, contract, time.time(), "api")

    changed, version = await request.app[DB].write(write)
    return web.json_response(
        {
            "contract": contract_view(contract),
            "changed": changed,
            "version": version,
        },
        status=200,
    )


async def delete_contract(request: web.Request) -> web.Response:
    partner = partner_of(request)
    cid = request.match_info["contract_id"]
    await _own_contract(request, cid)
    await request.app[DB].write(
        lambda c: repo.record_version(c, cid, partner.name, None, time.time(), "api")
    )
    return web.json_response({"removed": cid})


async def import_contracts(request: web.Request) -> web.Response:
    """Body: the CSV or TOML file (``Content-Type`` text/csv or application/toml, else
    detected); ``?dry_run=1`` only reports; ``?keep_missing=1`` removes nothing."""
    partner = partner_of(request)
    raw = await inputs.whole_body(request, inputs.MAX_IMPORT_BODY, "file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_file", "the file is not UTF-8") from None
    ctype = request.content_type
    fmt = "toml" if "toml" in ctype else "csv" if "csv" in ctype else detect_format("", text)
    try:
        # Seconds of pure Python for a large file: off the event loop, as the check run.
        incoming = await asyncio.get_running_loop().run_in_executor(
            None, parse_contracts, text, fmt
        )
    except ImportFailed as exc:
        raise ApiError(
            400,
            "invalid_file",
            f"nothing imported: {exc}",
            extra={
                "errors": [
                    {"line": e.line, "field": e.field, "message": e.message} for e in exc.errors
                ]
            },
        ) from None
    foreign = [c for c in incoming if c.partner != partner.name]
    if foreign:
        raise ApiError(
            403,
            "forbidden",
            f"contract {foreign[0].id} belongs to partner {foreign[0].partner!r}; "
            "a partner imports only its own contracts",
            "partner",
        )
    dry = request.query.get("dry_run", "") in ("1", "true", "yes")
    keep = request.query.get("keep_missing", "") in ("1", "true", "yes")

    def write(conn: Any) -> Any:
        current = repo.current_contracts(conn, partner.name)
        plan = plan_import(current, incoming, remove_missing=not keep)
        if not dry:
            repo.apply_import(conn, plan, time.time(), "api import")
        return plan

    if dry:
        plan = await request.app[DB].read(
            lambda c: plan_import(
                repo.current_contracts(c, partner.name), incoming, remove_missing=not keep
            )
        )
    else:
        plan = await request.app[DB].write(write)
    return web.json_response({"dry_run": dry, **plan.to_json()})


async def list_findings(request: web.Request) -> web.Response:
    """The last check run's findings; with ``?at=TIME`` a live evaluation at that instant
    (re-evaluating a past day against the current contract record)."""
    partner = partner_of(request)
    at = request.query.get("at")
    inputs.page(request, [])
    if at is None:
        rows = await request.app[DB].read(lambda c: repo.list_findings(c, partner.name))
    else:
        when = inputs.time_field(at, "at").timestamp()
        try:
            found = await request.app[DB].read(
                lambda c: service.findings_for_partner(c, partner.name, when)
            )
        except (OverflowError, ValueError, CalendarError) as exc:
            raise ApiError(
                400, "invalid_parameter", f"cannot evaluate the contracts at {at}: {exc}", "at"
            ) from None
        rows = [f.to_json() for f in found]
    rows = inputs.page(request, rows)
    return web.json_response({"findings": rows, "count": len(rows)})


# --- incidents -------------------------------------------------------------------------------


async def list_incidents(request: web.Request) -> web.Response:
    partner = partner_of(request)
    state = request.query.get("state")
    inputs.page(request, [])

    def read(c: Any) -> list[tuple[str, Any]]:
        seen = vendor.partners_read(c, partner.vendor, partner.partner_id, partner.name)
        return [(name, i) for _, name in seen for i in repo.list_incidents(c, name, state=state)]

    found = await request.app[DB].read(read)
    incs = [(p, i) for p, i in found if partner.sees_incident(i.server_id, i.contract_id)]
    now = dt.datetime.now(dt.UTC)
    rows = [
        {**incident_to_json(i, now), **({"partner": p} if partner.vendor else {})}
        for p, i in inputs.page(request, incs)
    ]
    return web.json_response({"incidents": rows, "count": len(rows)})


async def _own_incident(request: web.Request) -> Any:
    partner = partner_of(request)
    iid = request.match_info["incident_id"]
    got = await request.app[DB].read(lambda c: repo.get_incident(c, iid))
    if (
        got is None
        or got[1] != partner.name
        or not partner.sees_incident(got[0].server_id, got[0].contract_id)
    ):
        raise ApiError(404, "not_found", f"no incident {iid!r}")
    return got[0]


async def get_incident(request: web.Request) -> web.Response:
    inc = await _own_incident(request)
    return web.json_response(incident_to_json(inc, dt.datetime.now(dt.UTC)))


async def create_incident(request: web.Request) -> web.Response:
    """Open by hand: ``contract_id``, ``priority``, optional ``server_id``, ``title`` and
    ``opened_at`` (ISO 8601 with offset; a ticket from another help desk keeps its time)."""
    partner = partner_of(request)
    data = await inputs.json_body(request)
    cid = inputs.str_field(data, "contract_id", required=True)
    priority = inputs.str_field(data, "priority", required=True)
    server_id = inputs.str_field(data, "server_id")
    title = inputs.str_field(data, "title", limit=2000) or ""
    opened = inputs.not_future(inputs.time_field(data.get("opened_at"), "opened_at"), "opened_at")
    assert cid is not None and priority is not None
    contract = await _own_contract(request, cid)
    if server_id is not None:
        await owned_server(request, server_id)
    plan = get_plan(contract.plan)
    priority = plan.priority(priority)
    if priority is None:
        raise ApiError(
            400,
            "invalid_field",
            f"plan {plan.name} has priorities {', '.join(plan.priorities)}",
            "priority",
        )
    inc = open_incident(
        service.new_incident_id(),
        plan,
        priority,
        opened,
        calendar=contract.calendar_spec(),
        contract_id=contract.id,
        server_id=server_id,
        title=title,
        by=partner.name,
    )
    shown = _readable_incident(inc)
    await request.app[DB].write(lambda c: repo.insert_incident(c, inc, partner.name, time.time()))
    return web.json_response(shown, status=201)


def _readable_incident(inc: Any) -> dict[str, Any]:
    """The incident as every later read shows it; an incident whose clocks cannot be
    computed is refused before it is stored (it would break each list of incidents)."""
    try:
        return incident_to_json(inc, dt.datetime.now(dt.UTC))
    except (OverflowError, ValueError, CalendarError) as exc:
        raise ApiError(
            400, "invalid_field", f"the incident's clocks cannot be computed: {exc}"
        ) from None


async def incident_action(request: web.Request) -> web.Response:
    partner = partner_of(request)
    name = request.match_info["action"]
    try:
        action = Action(name)
    except ValueError:
        raise ApiError(404, "not_found", f"no incident action {name!r}") from None
    if action is Action.OPEN:
        raise ApiError(404, "not_found", "open an incident with POST /api/v1/incidents")
    data = await inputs.json_body(request)
    at = inputs.not_future(inputs.time_field(data.get("at"), "at"), "at")
    by = inputs.str_field(data, "by") if partner.customer is None else None
    by = by or partner.actor
    note = inputs.str_field(data, "note", limit=4000) or ""
    iid = request.match_info["incident_id"]

    def write(conn: Any) -> Any:
        got = repo.get_incident(conn, iid)
        if (
            got is None
            or got[1] != partner.name
            or not partner.sees_incident(got[0].server_id, got[0].contract_id)
        ):
            raise ApiError(404, "not_found", f"no incident {iid!r}")
        try:
            new = apply(got[0], action, at, by=by, note=note)
        except TransitionError as exc:
            raise ApiError(409, "invalid_transition", str(exc)) from None
        shown = _readable_incident(new)
        repo.save_incident(conn, new, time.time())
        return shown

    return web.json_response(await request.app[DB].write(write))


async def get_priority_map(request: web.Request) -> web.Response:
    from collector.contracts.incidents import DEFAULT_PRIORITY_MAP

    partner = partner_of(request)
    own = await request.app[DB].read(lambda c: repo.priority_map(c, partner.name))
    return web.json_response({"defaults": DEFAULT_PRIORITY_MAP, "overrides": own})


async def put_priority_map(request: web.Request) -> web.Response:
    """Body: ``{"overrides": {"camera_offline": "high", "silent": null, ...}}``."""
    partner = partner_of(request)
    data = await inputs.json_body(request)
    overrides = data.get("overrides")
    allowed = {"critical", "high", "medium", "low", "P1", "P2", "P3", "P4", None}
    if not isinstance(overrides, dict) or len(overrides) > 200:
        raise ApiError(400, "invalid_field", "overrides must be an object", "overrides")
    for k, v in overrides.items():
        if not isinstance(k, str) or len(k) > 64 or v not in allowed:
            raise ApiError(
                400,
                "invalid_field",
                f"overrides.{k}: level must be one of high/medium/low/P1-P4/null",
                "overrides",
            )
    await request.app[DB].write(
        lambda c: repo.set_priority_map(c, partner.name, overrides, time.time())
    )
    return web.json_response({"overrides": overrides})


# --- reports, SLA, SMA -----------------------------------------------------------------------


async def monthly_report(request: web.Request) -> web.Response:
    partner = partner_of(request)
    try:
        year, month = parse_month(request.query.get("month", ""))
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), "month") from None
    by = request.query.get("by", "customer")
    if by not in ("partner", "customer"):
        raise ApiError(400, "invalid_parameter", "by must be partner or customer", "by")
    tz = request.query.get("tz", "Europe/Berlin")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except (ValueError, KeyError, OSError):
        raise ApiError(400, "invalid_parameter", f"unknown time zone {tz!r}", "tz") from None
    now = time.time()
    whose = None if partner.vendor else partner.name  # the vendor: every partner's
    cache = request.app[REPORT_CACHE]
    report = await request.app[DB].read(lambda c: cache.report(c, year, month, by, whose, tz, now))
    label = f"{year:04d}-{month:02d}"
    if request.path.endswith(".pdf") or request.query.get("format") == "pdf":
        title = whose or "every partner"
        body = report.rendered(f"pdf {title}", lambda rows: render_pdf(rows, label, title))
        return web.Response(body=body, content_type="application/pdf")
    if request.query.get("format", "json") == "csv":
        return web.Response(text=report.rendered("csv", render_csv), content_type="text/csv")
    text = report.rendered("json", lambda rows: render_json_document(label, rows))
    return web.Response(text=text, content_type="application/json")


async def sla_due(request: web.Request) -> web.Response:
    partner_of(request)
    q = request.query
    try:
        plan = get_plan(q.get("plan", ""))
    except KeyError as exc:
        raise ApiError(400, "invalid_parameter", str(exc.args[0]), "plan") from None
    priority = plan.priority(q.get("priority", ""))
    if priority is None:
        raise ApiError(
            400,
            "invalid_parameter",
            f"priority must be one of {', '.join(plan.priorities)}",
            "priority",
        )
    opened = inputs.time_field(q.get("opened"), "opened")
    try:
        spec = plan.calendar.with_overrides(
            timezone=q.get("tz"),
            country=q.get("country"),
            subdiv=q.get("subdiv"),
            hours=q.get("hours"),
        )
        result = due_times(plan, priority, opened, spec)
    except (CalendarError, OverflowError, ValueError) as exc:
        raise ApiError(400, "invalid_parameter", f"cannot compute the due times: {exc}") from None
    return web.json_response(result.to_json())


async def server_sma_quote(request: web.Request) -> web.Response:
    row = await owned_server(request, request.match_info["server_id"])
    try:
        year = int(request.query.get("year", "1"))
        if not 1 <= year <= 50:
            raise ValueError
    except ValueError:
        raise ApiError(400, "invalid_parameter", "year must be 1..50", "year") from None
    later = request.query.get("bought_later", "") in ("1", "true", "yes")
    modules = await request.app[DB].read(lambda c: repo.server_modules(c, row.id))
    prices = await request.app[DB].read(repo.module_prices)
    pricing = get_plan("sma").pricing
    assert pricing is not None
    q = sma_quote(modules, prices, pricing, year=year, bought_with_software=not later)
    return web.json_response({"server_id": row.id, **q.to_json()})


async def server_sma_upgrade(request: web.Request) -> web.Response:
    """``?from=EDITION&to=EDITION``: the edition upgrade's price for this server."""
    row = await owned_server(request, request.match_info["server_id"])
    editions = []
    for name in ("from", "to"):
        value = request.query.get(name, "")
        if not value or len(value) > 200:
            raise ApiError(400, "invalid_parameter", f"{name} must name an edition", name)
        editions.append(value)
    active = await request.app[DB].read(lambda c: service.sma_in_force(c, row.id))
    prices = await request.app[DB].read(repo.module_prices)
    pricing = get_plan("sma").pricing
    assert pricing is not None
    try:
        data = edition_upgrade(editions[0], editions[1], prices, active, pricing)
    except KeyError as exc:
        raise ApiError(400, "unknown_edition", str(exc.args[0])) from None
    return web.json_response({"server_id": row.id, **data})


# --- the scheduled check run -------------------------------------------------------------------


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    interval = app[CONFIG].contracts.check_interval_s

    async def checks() -> None:
        # One process runs a round: the one holding the task's lease (collector.task_leases).
        result = await service.run_checks(app[DB], time.time())
        if result.new_incidents:
            log.info("contract checks opened %d incident(s)", len(result.new_incidents))

    handle = app[TASKS].every(
        "contract-checks",
        interval,
        checks,
        first_delay_s=min(30.0, interval),
        paused_when=lambda: writes_refused(app),
    )
    yield
    await handle.stop()


def setup(app: web.Application) -> None:
    """The contract, incident, report and SLA routes, the scheduler and the OpenAPI paths."""
    report_cache_setup(app)
    r = app.router
    r.add_get(paths.CONTRACTS, list_contracts)
    r.add_post(paths.CONTRACTS_IMPORT, import_contracts)
    r.add_get(paths.CONTRACT, get_contract)
    r.add_put(paths.CONTRACT, put_contract)
    r.add_delete(paths.CONTRACT, delete_contract)
    r.add_get(paths.CONTRACT_FINDINGS, list_findings)
    r.add_get(paths.INCIDENTS, list_incidents)
    r.add_post(paths.INCIDENTS, create_incident)
    r.add_get(paths.INCIDENT, get_incident)
    r.add_post(paths.INCIDENT_ACTION, incident_action)
    r.add_get(paths.INCIDENT_PRIORITIES, get_priority_map)
    r.add_put(paths.INCIDENT_PRIORITIES, put_priority_map)
    r.add_get(paths.MONTHLY_REPORT, monthly_report)
    r.add_get(paths.MONTHLY_REPORT_PDF, monthly_report)
    r.add_get(paths.SLA_DUE, sla_due)
    r.add_get(paths.SERVER_SMA_QUOTE, server_sma_quote)
    r.add_get(paths.SERVER_SMA_UPGRADE, server_sma_upgrade)
    app.cleanup_ctx.append(_scheduler)
    app[EXTRA_PATHS].update(OPENAPI_PATHS)

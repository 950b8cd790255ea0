"""The contracts page (partner users only): contracts by the nearest date to act on (last
day to cancel, end of term), servers no contract covers, versions a contract does not
cover; and the monthly report as a table (a page of its own) and as CSV.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from collector.contracts import repository as repo
from collector.contracts.reports import render_csv
from collector.contracts.views import build_report, contract_view, parse_month
from collector.health import servers
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import PartnerIdentity
from collector.http.errors import ApiError
from collector.http.pages import render, signed_in

REPORT_TZ = "Europe/Berlin"


def _partner_only(request: web.Request) -> PartnerIdentity:
    identity = signed_in(request)
    if identity.customer is not None:
        raise ApiError(403, "forbidden", "contracts are the partner's business")
    return identity


def _month(request: web.Request) -> tuple[int, int]:
    text = request.query.get("month", "")
    if not text:
        today = dt.date.today().replace(day=1) - dt.timedelta(days=1)
        return today.year, today.month
    try:
        return parse_month(text[:7])
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), "month") from None


def contracts_data(conn: Any, identity: PartnerIdentity) -> dict[str, Any]:
    contracts = [contract_view(c) for c in repo.current_contracts(conn, identity.name).values()]
    far = "9999-12-31"
    contracts.sort(
        key=lambda c: (c.get("last_day_to_cancel") or far, c.get("last_covered_day") or far)
    )
    # Uncovered: no current contract of the partner names the server's licence (what the
    # fleet's coverage lookup calls "none"), found from the contracts already read.
    licences = {lic for c in contracts for lic in c.get("licence_ids", ())}
    rows = servers.active_licences(conn, identity.partner_id)
    names = {sid: hostname for sid, hostname, _ in rows}
    uncovered = sorted(
        ((sid, hostname) for sid, hostname, licence in rows if (licence or "") not in licences),
        key=lambda x: x[1],
    )
    versions = [
        f for f in repo.list_findings(conn, identity.name) if f.get("kind") == "version_not_covered"
    ]
    return {"contracts": contracts, "uncovered": uncovered, "versions": versions, "names": names}


async def contracts_page(request: web.Request) -> web.Response:
    identity = _partner_only(request)
    year, month = _month(request)
    data = await request.app[DB].read(lambda c: contracts_data(c, identity))
    return render(
        "contracts.html", request, tab="contracts", month=f"{year:04d}-{month:02d}", **data
    )


async def report_page(request: web.Request) -> web.Response:
    """The monthly report as a table (its own page: it evaluates every day of the month)."""
    identity = _partner_only(request)
    year, month = _month(request)
    now = time.time()
    rows = await request.app[DB].read(
        lambda c: build_report(c, year, month, "customer", identity.name, REPORT_TZ, now)
    )
    return render(
        "report.html",
        request,
        tab="contracts",
        month=f"{year:04d}-{month:02d}",
        report=[asdict(r) for r in rows],
    )


async def report_csv(request: web.Request) -> web.Response:
    identity = _partner_only(request)
    year, month = _month(request)
    now = time.time()
    rows = await request.app[DB].read(
        lambda c: build_report(c, year, month, "customer", identity.name, REPORT_TZ, now)
    )
    return web.Response(
        text=render_csv(rows),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="vigil-report-{year:04d}-{month:02d}.csv"'
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get(paths.CONTRACTS_PAGE, contracts_page)
    app.router.add_get(paths.CONTRACTS_REPORT_PAGE, report_page)
    app.router.add_get(paths.CONTRACTS_REPORT_CSV, report_csv)

"""The contracts page (partner users only): contracts by the nearest date to act on (last
day to cancel, end of term), servers no contract covers, versions a contract does not
cover; and the monthly report as a table (a page of its own), as CSV and as PDF.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from collector.accounts import vendor
from collector.contracts import repository as repo
from collector.contracts.codec import contract_to_dict
from collector.contracts.report_cache import PAGE_TZ, REPORT_CACHE, MonthlyReport, last_month
from collector.contracts.report_pdf import render_pdf
from collector.contracts.reports import render_csv
from collector.contracts.terms import Contract
from collector.contracts.views import coverage_dates, parse_month
from collector.health import servers
from collector.http import paths
from collector.http.appkeys import DB
from collector.http.auth import PartnerIdentity
from collector.http.errors import ApiError
from collector.http.pages import render, signed_in

REPORT_TZ = PAGE_TZ


def _partner_only(request: web.Request) -> PartnerIdentity:
    identity = signed_in(request)
    if identity.customer is not None:
        raise ApiError(403, "forbidden", "contracts are the partner's business")
    return identity


def _reported(identity: PartnerIdentity) -> str | None:
    """Whose monthly report: the partner's own; every partner's for the vendor."""
    return None if identity.vendor else identity.name


def _month(request: web.Request) -> tuple[int, int]:
    text = request.query.get("month", "")
    if not text:
        return last_month(time.time(), REPORT_TZ)
    try:
        return parse_month(text[:7])
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), "month") from None


PAGE_SIZE = 100
"""Contracts shown per page; the list is sorted over all of them first."""


def contracts_data(conn: Any, identity: PartnerIdentity, page: int = 1) -> dict[str, Any]:
    seen = vendor.partners_read(conn, identity.vendor, identity.partner_id, identity.name)
    current = [c for _, name in seen for c in repo.current_contracts(conn, name).values()]
    days: dict[str, dt.date] = {}
    dated = [(c, coverage_dates(c, _today(c, days))) for c in current]
    far = "9999-12-31"
    dated.sort(
        key=lambda cd: (cd[1]["last_day_to_cancel"] or far, cd[1]["last_covered_day"] or far)
    )
    pages = max(1, -(-len(dated) // PAGE_SIZE))
    page = max(1, min(page, pages))
    shown = dated[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    contracts = [{**contract_to_dict(c), **dates} for c, dates in shown]
    # Uncovered: no current contract of the partner names the server's licence (what the
    # fleet's coverage lookup calls "none"), found from the contracts already read.
    # A licence counts for its own partner's servers only.
    uncovered, names, versions = [], {}, []
    for pid, name in seen:
        licences = {lic for c in current if c.partner == name for lic in c.licence_ids}
        rows = servers.active_licences(conn, pid)
        names.update({sid: hostname for sid, hostname, _ in rows})
        uncovered += [(sid, host) for sid, host, lic in rows if (lic or "") not in licences]
        versions += [
            f for f in repo.list_findings(conn, name) if f.get("kind") == "version_not_covered"
        ]
    uncovered.sort(key=lambda x: x[1])
    return {
        "contracts": contracts,
        "contracts_total": len(dated),
        "page": page,
        "pages": pages,
        "uncovered": uncovered,
        "versions": versions,
        "names": names,
    }


def _today(c: Contract, days: dict[str, dt.date]) -> dt.date | None:
    """Today in the contract's time zone, computed once per zone (None: the contract's
    plan is unknown; :func:`coverage_dates` reports it)."""
    try:
        tz = c.calendar_spec().timezone
    except LookupError:
        return None
    today = days.get(tz)
    if today is None:
        today = days[tz] = dt.datetime.now(ZoneInfo(tz)).date()
    return today


def _page(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page", "1")[:6]))
    except ValueError:
        return 1


async def contracts_page(request: web.Request) -> web.Response:
    identity = _partner_only(request)
    year, month = _month(request)
    page = _page(request)
    data = await request.app[DB].read(lambda c: contracts_data(c, identity, page))
    return render(
        "contracts.html",
        request,
        tab="contracts",
        month=f"{year:04d}-{month:02d}",
        vendor_view=identity.vendor,
        **data,
    )


async def _report(request: web.Request) -> tuple[Any, int, int, MonthlyReport]:
    """(identity, year, month, report) of the monthly report the request asks for: what
    the page, the CSV and the PDF each show (a month that is over from
    :mod:`collector.contracts.report_cache`)."""
    identity = _partner_only(request)
    year, month = _month(request)
    now = time.time()
    cache = request.app[REPORT_CACHE]
    whose = _reported(identity)
    report = await request.app[DB].read(
        lambda c: cache.report(c, year, month, "customer", whose, REPORT_TZ, now)
    )
    return identity, year, month, report


async def report_page(request: web.Request) -> web.Response:
    """The monthly report as a table (its own page: it evaluates every day of the month).
    The rows go to the template as they are (shared with the kept report: read only)."""
    _, year, month, report = await _report(request)
    return render(
        "report.html",
        request,
        tab="contracts",
        month=f"{year:04d}-{month:02d}",
        report=report.rows,
    )


async def report_csv(request: web.Request) -> web.Response:
    _, year, month, report = await _report(request)
    return web.Response(
        text=report.rendered("csv", render_csv),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="vigil-report-{year:04d}-{month:02d}.csv"'
        },
    )


async def report_pdf(request: web.Request) -> web.Response:
    """The monthly report as a PDF (the CSV's figures; :mod:`collector.contracts.report_pdf`)."""
    identity, year, month, report = await _report(request)
    name = f"{year:04d}-{month:02d}"
    whose = "every partner" if identity.vendor else identity.name
    body = report.rendered(f"pdf {whose}", lambda rows: render_pdf(rows, name, whose))
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="vigil-report-{name}.pdf"'},
    )


def setup(app: web.Application) -> None:
    app.router.add_get(paths.CONTRACTS_PAGE, contracts_page)
    app.router.add_get(paths.CONTRACTS_REPORT_PAGE, report_page)
    app.router.add_get(paths.CONTRACTS_REPORT_CSV, report_csv)
    app.router.add_get(paths.CONTRACTS_REPORT_PDF, report_pdf)

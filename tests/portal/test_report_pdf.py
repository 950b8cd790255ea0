"""The monthly report as PDF, from the contracts page and from the API: its text (read back
with pypdf) carries the same figures as the JSON report, and only the partner's own
customers and servers."""

from __future__ import annotations

import io
import time

import pytest
from pypdf import PdfReader

from harness.net import http
from tests.portal.world import World, call, page, sign_in

# The world's servers were enrolled today and a report counts from enrollment: this month.
MONTH = time.strftime("%Y-%m", time.gmtime())


def _text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)


def _session(world: World, user: str) -> dict[str, str]:
    status, cookie, _ = sign_in(world.collector, world.email(user), world.passwords[user])
    assert status == 302
    return cookie


def _section(text: str, customer: str) -> list[str]:
    """The lines of one customer's part of the report (each starts on a page of its own)."""
    part = text.split(f"Customer: {customer} · ", 1)[1].split("Monthly report", 1)[0]
    return [line.strip() for line in part.splitlines()]


def _figures_shown(lines: list[str], row: dict[str, object]) -> None:
    """Each summary figure of the JSON row follows its label in the customer's table."""
    for label, field in (
        ("Servers", "servers"),
        ("Server days", "server_days"),
        ("Days covered (active)", "days_active"),
        ("Days not covered", "days_uncovered"),
        ("Incidents opened", "incidents"),
        ("Backup slots", "backup_slots_total"),
    ):
        at = lines.index(label)
        assert lines[at + 1] == f"{row[field]:,}", (label, row[field], lines)


def test_the_contracts_page_offers_the_report_as_pdf_with_the_reports_figures(
    world: World,
) -> None:
    admin = _session(world, "acme-admin")
    _, body = page(world.collector, f"/contracts?month={MONTH}", admin)
    assert f'href="/contracts/report.pdf?month={MONTH}"'.encode() in body
    status, headers, pdf = http(
        "GET", f"{world.collector.url}/contracts/report.pdf?month={MONTH}", None, admin
    )
    assert status == 200
    assert headers.get("Content-Type", "").startswith("application/pdf")
    text = _text(pdf)
    assert f"Monthly report {MONTH}" in text
    _, report = call(
        world.collector, world.keys["acme"], "GET", f"/api/v1/reports/monthly?month={MONTH}"
    )
    customers = {r["customer"]: r for r in report["rows"]}
    assert {"Museum", "Bakery"} <= set(customers)
    for name in ("Museum", "Bakery"):
        assert f"Customer: {name} · partner: acme" in text
        _figures_shown(_section(text, name), customers[name])
    for name in ("museum-1", "bakery-1"):
        assert world.servers[name] in text
    assert world.servers["rival-1"] not in text and "Rival Customer" not in text


def test_the_api_gives_each_partner_its_own_report_as_pdf(world: World) -> None:
    status, headers, pdf = http(
        "GET",
        f"{world.collector.url}/api/v1/reports/monthly?month={MONTH}&format=pdf",
        None,
        {"Authorization": f"Bearer {world.keys['rival']}"},
    )
    assert status == 200 and headers.get("Content-Type", "").startswith("application/pdf")
    text = _text(pdf)
    assert "Customer: Rival Customer · partner: rival" in text
    assert world.servers["rival-1"] in text
    for name in ("museum-1", "bakery-1", "acme-free"):
        assert world.servers[name] not in text
    assert "Museum" not in text and "Bakery" not in text


@pytest.mark.parametrize("user", ["museum", "bakery"])
def test_customers_get_no_pdf_report(world: World, user: str) -> None:
    status, _, body = http(
        "GET",
        f"{world.collector.url}/contracts/report.pdf?month={MONTH}",
        None,
        _session(world, user),
    )
    assert status in (403, 404)
    assert not body.startswith(b"%PDF")

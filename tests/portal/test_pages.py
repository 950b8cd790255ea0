"""The pages over HTTP: fleet filters, the server page's parts, roles on forms, CSRF, and
HTML refusals for browsers while the API keeps answering JSON."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.parse

import pytest

from harness.net import http_no_redirect
from tests.contracts.test_report_pdf import contains_in_order, csv_cells, pdf_words
from tests.portal.world import World, call, page, post_form, sign_in


def _hosts(body: bytes) -> list[str]:
    return re.findall(rb'<a href="/servers/[^"]+">([^<]+)</a>', body)


@pytest.fixture(scope="module")
def admin(world: World) -> dict[str, str]:
    status, cookie, _ = sign_in(
        world.collector, world.email("acme-admin"), world.passwords["acme-admin"]
    )
    assert status == 302
    return cookie


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {b"museum-1", b"bakery-1", b"acme-free"}),
        ("q=LIC-X", {b"acme-free"}),
        ("customer=Museum", {b"museum-1"}),
        ("plan=premium-24x7", {b"museum-1"}),
        ("status=unmonitored", {b"acme-free"}),
        ("backup_overdue=1", set()),
        ("status=ok&customer=Bakery", set()),
        ("page=999999999999&q=%00", set()),
    ],
)
def test_fleet_filters(
    world: World, admin: dict[str, str], query: str, expected: set[bytes]
) -> None:
    status, body = page(world.collector, "/?" + query, admin)
    assert status == 200
    assert set(_hosts(body)) == expected, (query, _hosts(body))


def test_the_sla_at_risk_filter_shows_the_servers_the_incident_clocks_put_at_risk(
    world: World, admin: dict[str, str]
) -> None:
    # Whether a business-hours incident is past 75 % of its due time depends on the hour
    # and the weekday the world was built (its clock stops at closing time), so the
    # expected servers are the ones the incidents API's own timers put at risk.
    status, out = call(world.collector, world.keys["acme"], "GET", "/api/v1/incidents")
    assert status == 200, out
    at_risk = {"warning_75", "breached"}
    risky = {
        i["server_id"]
        for i in out["incidents"]
        if i["state"] in ("open", "acknowledged", "paused")
        and {i["response"]["status"], i["resolution"]["status"]} & at_risk
    }
    names = {sid: name.encode() for name, sid in world.servers.items()}
    expected = {names[sid] for sid in risky}
    # museum-1's volume incident runs on the 24x7 plan's 1-hour response: breached at any hour.
    assert b"museum-1" in expected, out
    status, body = page(world.collector, "/?sla_at_risk=1", admin)
    assert status == 200
    assert set(_hosts(body)) == expected


def test_a_server_whose_first_backup_is_not_due_is_not_shown_green(
    world: World, admin: dict[str, str]
) -> None:
    # No server of the world has backed up, and none is overdue: the backup cell says so
    # in a neutral colour, not "never" beside a green dot.
    _, body = page(world.collector, "/", admin)
    assert b"none yet" in body and b"first one not due" in body
    assert b'<span class="dot ok"></span>never' not in body


def test_the_most_urgent_servers_come_first(world: World, admin: dict[str, str]) -> None:
    _, body = page(world.collector, "/", admin)
    hosts = _hosts(body)
    assert hosts[-1] == b"acme-free", hosts  # critical (volume filling) before unmonitored
    assert b"SLA at risk" in body and b"What the colours mean" in body


def _row_of(body: bytes, host: str) -> str:
    """The fleet table's row of ``host``."""
    rows = re.findall(r"<tr>\s*<td><a href=\"/servers/.*?</tr>", body.decode(), re.S)
    mine = [r for r in rows if f">{host}</a>" in r]
    assert len(mine) == 1, (host, rows)
    return mine[0]


def test_a_volume_its_forecast_says_is_full_soon_draws_a_critical_bar(
    world: World, admin: dict[str, str]
) -> None:
    # Every world server's /video is 72 % full and, at 160 B a day, full within two days:
    # critical by its forecast, so its bar is red although 72 % alone would be green.
    _, body = page(world.collector, "/", admin)
    row = _row_of(body, "museum-1")
    assert '<span class="bar" title="critical"><span class="w72 hot"></span></span>' in row, row
    assert "/video" in row and "full 20" in row  # the forecast's date beside it
    sid = world.servers["museum-1"]
    _, body = page(world.collector, f"/servers/{sid}", admin)
    bars = re.findall(
        r'<span class="bar" title="(\w+)"><span class="([\w ]+)"></span>', body.decode()
    )
    assert sorted(bars) == [("critical", "w72 hot"), ("ok", "w20")], bars


def _tiles(body: bytes) -> dict[str, int]:
    found = re.findall(rb'class="tile (\w+)[^"]*" href="[^"]*"><b>(\d+)</b>', body)
    return {k.decode(): int(n) for k, n in found}


@pytest.mark.parametrize(
    ("query", "selected"),
    [
        ("customer=Museum", {"critical": 1}),
        ("customer=Museum&status=ok", {"critical": 1}),  # every status of the filter
        ("q=LIC-X", {"unmonitored": 1}),
        ("plan=maintenance-support", {"critical": 1}),
        ("q=nothing-matches", {}),
    ],
)
def test_the_tiles_count_what_the_filter_selects(
    world: World, admin: dict[str, str], query: str, selected: dict[str, int]
) -> None:
    _, body = page(world.collector, "/", admin)
    fleet = _tiles(body)
    assert fleet["all"] == 3 and b"all servers" in body and b"filter selects" not in body
    _, body = page(world.collector, "/?" + query, admin)
    tiles = _tiles(body)
    assert {k: n for k, n in tiles.items() if n and k != "all"} == selected, tiles
    assert tiles["all"] == sum(selected.values()) and b"all selected" in body
    assert b"The counts below are of the servers the filter selects" in body
    assert b"of 3 servers shown" in body  # the fleet's size still said beside the list


def test_the_server_page_shows_storage_forecast_backups_contract_incidents(
    world: World, admin: dict[str, str]
) -> None:
    sid = world.servers["museum-1"]
    status, body = page(world.collector, f"/servers/{sid}", admin)
    assert status == 200
    text = body.decode()
    assert 'stroke-dasharray="6 4"' in text, "the forecast line"
    assert text.count('text-anchor="middle"') >= 3, "a dated time axis"
    assert "160 B/day" in text and f"vigil-backup restore --server {sid}" in text
    assert "premium-24x7" in text and "health monitoring" in text
    assert world.incidents["museum-1"] in text


def test_a_viewer_reads_but_cannot_act_on_incidents(world: World) -> None:
    c = world.collector
    _, cookie, _ = sign_in(c, world.email("acme-viewer"), world.passwords["acme-viewer"])
    status, body = page(c, "/incidents", cookie)
    assert status == 200 and b"disk trouble on bakery-1" in body
    assert b'action="/incidents/' not in body
    inc = world.incidents["bakery-1"]
    status, _, body = post_form(c, f"/incidents/{inc}/acknowledge", cookie, {})
    assert status == 403 and b"<h1>Not allowed</h1>" in body
    _, out = call(c, world.keys["acme"], "GET", f"/api/v1/incidents/{inc}")
    assert out["state"] == "open"


def test_incident_forms_need_the_csrf_token(world: World) -> None:
    c = world.collector
    _, cookie, _ = sign_in(c, world.email("acme-operator"), world.passwords["acme-operator"])
    inc = world.incidents["bakery-1"]
    form = urllib.parse.urlencode({"csrf": "forged"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **cookie}
    status, _, _ = http_no_redirect("POST", c.url + f"/incidents/{inc}/acknowledge", form, headers)
    assert status == 403
    _, out = call(c, world.keys["acme"], "GET", f"/api/v1/incidents/{inc}")
    assert out["state"] == "open"
    status, _, _ = post_form(c, f"/incidents/{inc}/acknowledge", cookie, {})
    assert status == 303
    _, out = call(c, world.keys["acme"], "GET", f"/api/v1/incidents/{inc}")
    assert out["state"] == "acknowledged"
    assert out["events"][-1]["by"] == world.email("acme-operator")


def test_browsers_get_html_refusals_and_the_api_json(world: World, admin: dict[str, str]) -> None:
    c = world.collector
    status, _, body = http_no_redirect("GET", c.url + "/no/such/page", headers=admin)
    assert status == 404 and body.startswith(b"<!doctype html>") and b"Not found" in body
    status, body = page(c, "/servers/srv_nope", admin)
    assert status == 404 and b"<h1>Not found</h1>" in body and b"Fleet" in body
    status, out = call(c, world.keys["acme"], "GET", "/api/v1/servers/srv_nope")
    assert status == 404 and out["error"] == "not_found"
    status, out = call(c, world.keys["acme"], "GET", "/api/v1/no-such-endpoint")
    assert status == 404 and json.dumps(out).startswith('{"error"')


def test_settings_make_and_show_a_key_once_and_policy_is_validated(
    world: World, admin: dict[str, str]
) -> None:
    c = world.collector
    status, _, body = post_form(c, "/settings/api-keys", admin, {"label": "once"})
    assert status == 201
    key = re.search(rb'id="new-secret">(vgl_key_[^<]+)<', body)
    assert key is not None
    assert call(c, key.group(1).decode(), "GET", "/api/v1/me")[1]["email"] == world.email(
        "acme-admin"
    )
    _, again = page(c, "/settings", admin)
    assert key.group(1) not in again
    bad = {
        "interval": "soon",
        "window": "",
        **{
            k: "1"
            for k in ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
        },
    }
    status, _, body = post_form(c, "/settings/backup-policy", admin, bad)
    assert status == 400 and b"Backup policy" in body
    # Every 12 h, keep 1 of each, would break the promises of bakery-1's maintenance
    # (keep 7 ...) and museum-1's premium (every 6 h, keep 28 ...): refused, naming them.
    breaking = {**bad, "interval": "12h", "window": "01:00-05:00"}
    status, _, body = post_form(c, "/settings/backup-policy", admin, breaking)
    assert status == 409 and b"keep_last 1 is below the 28 promised by contract A-M" in body
    keeping = {
        **bad,
        "interval": "6h",
        "keep_last": "28",
        "keep_daily": "30",
        "keep_weekly": "8",
        "keep_monthly": "24",
    }
    assert post_form(c, "/settings/backup-policy", admin, keeping)[0] == 303
    # bakery-1 is on maintenance-support: 6 h is within its promise (every 24 h), so the
    # partner's policy is what it gets, as museum-1's premium contract (every 6 h).
    sid = world.servers["bakery-1"]
    _, out = call(c, world.keys["acme"], "GET", f"/api/v1/servers/{sid}/backup-status")
    assert out["interval_s"] == 6 * 3600 and out["window"] == ""
    sid = world.servers["museum-1"]
    _, out = call(c, world.keys["acme"], "GET", f"/api/v1/servers/{sid}/backup-status")
    assert out["interval_s"] == 6 * 3600


def test_the_report_page_shows_the_csvs_figures_with_the_entitlement_findings(
    world: World, admin: dict[str, str]
) -> None:
    """Each customer's row on the report page holds the CSV's figures, the entitlement
    findings at the month's end among them (the page left them out)."""
    month = time.strftime("%Y-%m")
    status, csv_text = page(world.collector, f"/contracts/report.csv?month={month}", admin)
    assert status == 200
    wanted = {
        r["customer"]: [
            r["servers"],
            f"{r['days_active']} / {r['days_grace']} / {r['days_uncovered']}",
            r["entitlement_findings"],
            r["incidents"],
        ]
        for r in csv.DictReader(io.StringIO(csv_text.decode()))
    }
    status, body = page(world.collector, f"/contracts/report?month={month}", admin)
    assert status == 200 and b"Entitlement findings</th>" in body
    shown = {}
    for row in re.findall(r"<tr><td>(.*?)</tr>", body.decode(), re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.split(r"</td>\s*<td[^>]*>", row)]
        shown[cells[0]] = [cells[1], cells[2], cells[3], cells[6]]
    assert shown == wanted and set(wanted) == {"Museum", "Bakery", "(no contract)"}


def test_the_monthly_report_as_pdf_holds_the_csvs_figures(
    world: World, admin: dict[str, str]
) -> None:
    """The contracts page links the PDF; the PDF of a month holds the figures of the CSV
    of the same month, from the page and from the API; the vendor's covers both partners."""
    month = time.strftime("%Y-%m")
    status, body = page(world.collector, f"/contracts?month={month}", admin)
    assert status == 200 and f'href="/contracts/report.pdf?month={month}"'.encode() in body
    status, csv_text = page(world.collector, f"/contracts/report.csv?month={month}", admin)
    assert status == 200
    expected = csv_cells(csv_text.decode())
    assert {c[1] for c in expected} == {"Museum", "Bakery", "(no contract)"}
    status, _, pdf = http_no_redirect(
        "GET", world.collector.url + f"/contracts/report.pdf?month={month}", headers=admin
    )
    assert status == 200 and pdf.startswith(b"%PDF-")
    words = pdf_words(pdf)
    for cells in expected:
        assert contains_in_order(words, cells), (cells, words)
    status, api_pdf = call(
        world.collector,
        world.keys["acme-admin"],
        "GET",
        f"/api/v1/reports/monthly.pdf?month={month}",
    )
    assert status == 200 and all(contains_in_order(pdf_words(api_pdf), c) for c in expected)
    status, vendor_pdf = call(
        world.collector,
        world.keys["vendor-viewer"],
        "GET",
        f"/api/v1/reports/monthly.pdf?month={month}",
    )
    vendor_words = pdf_words(vendor_pdf)
    assert status == 200 and all(contains_in_order(vendor_words, c) for c in expected)
    assert contains_in_order(vendor_words, ["rival", "Rival", "Customer"])
    status, rival_pdf = call(
        world.collector,
        world.keys["rival-admin"],
        "GET",
        f"/api/v1/reports/monthly.pdf?month={month}",
    )
    assert status == 200 and "Museum" not in pdf_words(rival_pdf)

"""The portal in a real browser: Debian's Chromium, headless, driven by Playwright, against
a real collector on 127.0.0.1 (no browser is downloaded: ``/usr/bin/chromium``, installed
by ``packaging/dev/system-packages.sh``).

A partner's admin signs in, reads the fleet, filters it, opens a server and its chart,
acknowledges and resolves an incident, creates and revokes an API key, adds a user and
signs out; the customer's operator accepts the resolution and cannot open another
customer's server; the vendor's viewer sees both partners' servers and filters by one.
Screenshots of every page at desktop and phone width are written to
``.artefacts/screens/`` for a person to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.portal.world import World

CHROMIUM = Path("/usr/bin/chromium")
SCREENS = Path(__file__).resolve().parents[2] / ".artefacts" / "screens"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Browser]:
    """Chromium, started after the world is built (Playwright's loop owns the thread)."""
    assert CHROMIUM.exists(), "install Chromium: packaging/dev/system-packages.sh"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Page:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def shot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(SCREENS / f"{name}-{width}.png"), full_page=True)


def sign_in(page: Page, world: World, user: str) -> None:
    page.goto(world.collector.url + "/login")
    page.get_by_label("E-mail address").fill(world.email(user))
    page.get_by_label("Password", exact=True).fill(world.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()


def test_partner_admin_runs_the_fleet_from_the_browser(browser: Browser, world: World) -> None:
    page = _page(browser)
    page.goto(world.collector.url + "/login")
    shot(page, "login")
    sign_in(page, world, "acme-admin")
    rows = page.locator("#live tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#live")).not_to_contain_text("rival-1")
    page.get_by_text("What the colours mean").click()
    expect(page.locator(".legend dl")).to_contain_text("has not reported for several intervals")
    shot(page, "fleet")

    # Filter: a search, then a status, kept in the address for a bookmark.
    page.get_by_label("Search").fill("museum")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("museum-1")
    assert "q=museum" in page.url
    page.get_by_label("Status").select_option("unmonitored")
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("acme-free")

    # A server: facts, storage chart with a dated axis, contract, incidents.
    page.goto(world.collector.url + "/")
    page.get_by_role("link", name="museum-1").click()
    expect(page.get_by_role("heading", name=re.compile("museum-1"))).to_be_visible()
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    assert chart.locator("text").count() >= 10  # axis labels, legend
    expect(page.locator("pre.cmd")).to_contain_text(
        f"vigil-backup restore --server {world.servers['museum-1']}"
    )
    expect(page.locator("main")).to_contain_text("premium-24x7")
    shot(page, "server")

    # Incidents: acknowledge, then resolve the museum's incident.
    page.get_by_role("link", name="Incidents").click()
    inc = world.incidents["museum-1"]
    row = page.locator(f"tr#{inc}")
    expect(row).to_contain_text("open")
    shot(page, "incidents")
    row.get_by_role("button", name=f"acknowledge {inc}").click()
    expect(page.get_by_role("status")).to_contain_text("acknowledge")
    expect(row).to_contain_text("acknowledged")
    expect(row.locator("td.clock").first).to_contain_text("met")
    row.get_by_role("button", name=f"resolve {inc}").click()
    expect(page.get_by_role("status")).to_contain_text("resolve")
    page.get_by_role("link", name="All").click()
    expect(page.locator(f"tr#{inc}")).to_contain_text("resolved")

    page.get_by_role("link", name="Contracts").click()
    expect(page.locator("main")).to_contain_text("A-M")
    expect(page.locator("main")).to_contain_text("acme-free")  # not covered
    shot(page, "contracts")
    # This month: the world's servers were enrolled today, and a report counts from
    # enrollment, so last month (the form's default) has nothing to show.
    page.get_by_label("Month").fill(time.strftime("%Y-%m", time.gmtime()))
    page.get_by_role("button", name="Show the report").click()
    expect(page.get_by_role("heading", name=re.compile("Monthly report"))).to_be_visible()
    expect(page.locator("main table")).to_contain_text("Museum")
    shot(page, "report")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv = Path(download.value.path()).read_text()
    assert csv.splitlines()[0].startswith("month,") and "Museum" in csv

    # Settings: an API key made and revoked; a user added with a role.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Label").fill("browser test")
    page.get_by_role("button", name="Create API key").click()
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("vgl_key_")
    prefix = secret[:14]
    key_row = page.locator("tr", has_text="browser test")
    expect(key_row).to_contain_text(prefix)
    key_row.get_by_role("button", name=f"revoke {prefix}").click()
    expect(page.locator("tr", has_text="browser test")).to_contain_text("revoked")
    page.get_by_label("E-mail", exact=True).fill("new-operator@example.test")
    page.get_by_label("Password", exact=True).fill("a good long password")
    page.get_by_label("Role").select_option("operator")
    page.get_by_role("button", name="Add user").click()
    new_row = page.locator("tr", has_text="new-operator@example.test")
    expect(new_row).to_contain_text("operator")
    shot(page, "settings")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(world.collector.url + "/settings")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.context.close()

    # The revoked key is refused by the API as well.
    from tests.portal.world import call

    assert call(world.collector, secret, "GET", "/api/v1/servers")[0] == 401


def test_customer_accepts_and_sees_only_its_sites(browser: Browser, world: World) -> None:
    from tests.portal.world import call

    inc = world.incidents["museum-1"]
    operator = world.keys["acme-operator"]
    for action in ("acknowledge", "resolve"):
        status, out = call(
            world.collector, operator, "POST", f"/api/v1/incidents/{inc}/{action}", {}
        )
        assert status in (200, 409), out  # 409: the partner's test already did it
    page = _page(browser)
    sign_in(page, world, "museum")
    expect(page.locator("#live tbody tr")).to_have_count(1)
    expect(page.locator("#live")).to_contain_text("museum-1")
    expect(page.get_by_role("link", name="Contracts")).to_have_count(0)
    page.get_by_role("link", name="Incidents").click()
    row = page.locator(f"tr#{inc}")
    expect(row).to_contain_text("resolved")
    expect(row.get_by_role("button", name=f"acknowledge {inc}")).to_have_count(0)
    shot(page, "customer-incidents")
    row.get_by_role("button", name=f"accept {inc}").click()
    expect(page.get_by_role("status")).to_contain_text("accept")
    page.get_by_role("link", name="All").click()
    expect(page.locator(f"tr#{inc}")).to_contain_text("closed")
    expect(page.locator(f"tr#{inc}")).to_contain_text("museum@example.test")

    response = page.goto(world.collector.url + f"/servers/{world.servers['bakery-1']}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "bakery-1" not in page.content()
    shot(page, "not-found")
    response = page.goto(world.collector.url + "/contracts")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    page.context.close()


def test_the_vendor_sees_both_partners_and_filters_by_one(browser: Browser, world: World) -> None:
    page = _page(browser)
    sign_in(page, world, "vendor-viewer")
    fleet = page.locator("#live")
    for host, partner in (("museum-1", "acme"), ("rival-1", "rival")):
        expect(fleet.locator("tr", has_text=host)).to_contain_text(partner)
    page.get_by_label("Partner").select_option("rival")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#live tbody tr")).to_have_count(1)
    expect(fleet).to_contain_text("rival-1")
    expect(page.get_by_role("button", name=re.compile("^Silence"))).to_have_count(0)
    shot(page, "vendor-fleet")
    page.context.close()


def test_operator_silences_a_server_from_its_page(browser: Browser, world: World) -> None:
    page = _page(browser)
    sign_in(page, world, "acme-operator")
    page.get_by_role("link", name="bakery-1").click()
    expect(page.get_by_role("heading", name=re.compile("bakery-1"))).to_be_visible()
    page.get_by_label("Silence for").fill("90m")
    page.get_by_label("Reason").fill("replacing a disk")
    page.get_by_role("button", name="Silence this server").click()
    expect(page.get_by_role("status")).to_contain_text("silence")
    notice = page.locator("#silence ~ div.silenced", has_text="replacing a disk")
    expect(notice).to_contain_text("silenced")
    shot(page, "server-silenced")

    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name=re.compile("Notifications")).click()
    row = page.locator("#silences ~ div tr", has_text="replacing a disk").first
    expect(row).to_contain_text("bakery-1")
    shot(page, "notifications")

    page.goto(world.collector.url + f"/servers/{world.servers['bakery-1']}")
    notice.get_by_role("button", name=re.compile("end silence")).click()
    expect(page.get_by_role("status")).to_contain_text("ended")
    expect(page.locator("#silence ~ div.silenced", has_text="replacing a disk")).to_have_count(0)
    page.context.close()


def test_every_page_reflows_at_phone_width(browser: Browser, world: World) -> None:
    page = _page(browser, PHONE)
    sign_in(page, world, "acme-admin")
    pages = {
        "fleet": "/",
        "server": f"/servers/{world.servers['museum-1']}",
        "incidents": "/incidents?state=all",
        "contracts": "/contracts",
        "report": "/contracts/report",
        "settings": "/settings",
        "notifications": "/settings/notifications",
    }
    for name, path in pages.items():
        page.goto(world.collector.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, width)
        shot(page, name)
    page.context.close()
    page = _page(browser, PHONE)
    page.goto(world.collector.url + "/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "login")
    page.context.close()


def test_the_keyboard_reaches_everything(browser: Browser, world: World) -> None:
    page = _page(browser)
    sign_in(page, world, "acme-admin")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Through the header to the navigation: each link takes focus in order.
    page.goto(world.collector.url + "/")
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Fleet", "Incidents", "Contracts", "Settings", "Sign out"} <= set(seen), seen
    page.context.close()


def test_the_fleet_refreshes_in_place(browser: Browser, world: World) -> None:
    page = _page(browser)
    sign_in(page, world, "acme-admin")
    page.goto(world.collector.url + "/?refresh=2")
    marker = page.evaluate("window.__marker = 1")
    assert marker == 1
    with page.expect_response(lambda r: "refresh=2" in r.url and r.status == 200):
        pass
    expect(page.locator("#live tbody tr")).to_have_count(3)
    assert page.evaluate("window.__marker") == 1, "the page was not reloaded"
    page.context.close()

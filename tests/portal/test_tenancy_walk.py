"""A walk over every route of the collector, API and pages, with the ids of another
organisation: partner against partner, customer against customer (and against the other
partner). Each must answer 404, as if the object did not exist; a route the asker's role
may not use at all may answer 403, but then exactly as it does with the asker's own ids,
so the answer tells nothing about the other's objects. Every list the asker may read is
searched for the other's ids and names.

The routes come from the application itself, so a route added later is walked too (and
fails here until this test knows how to fill in its placeholders).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from collector.config import load_config
from collector.http.app import create_app
from harness.database import collector_sql
from harness.net import http, http_no_redirect
from tests.portal.world import World, csrf_of, page, sign_in

NOT_TENANT_ROUTES = {
    ("GET", "/static/{name}"),  # the style sheet and script
    # A contract id is a partner's own: PUT names (creates) the asker's own contract of that
    # id and never touches the other's (tests/security/test_contract_tenancy.py).
    ("PUT", "/api/v1/contracts/{contract_id}"),
}
"""Routes with a placeholder that names no organisation's object."""
OPEN_PAGES = ("/login", "/healthz", "/metrics", "/forgot-password", "/reset-password")
"""Pages for someone not signed in: they list nothing."""


def app_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route but agents' (their own signed protocol)."""
    app = create_app(load_config(None, tempfile.mkdtemp()))
    out = set()
    for r in app.router.routes():
        path = r.resource.canonical if r.resource is not None else ""
        if r.method == "HEAD" or path.startswith("/api/v1/agent/"):
            continue
        out.add((r.method, path))
    return sorted(out)


def _ids(world: World, owner: str) -> dict[str, str]:
    """The ids of objects of ``owner`` (a user name of the world) to put into routes."""
    server = {"acme-admin": "museum-1", "museum": "museum-1", "bakery": "bakery-1"}.get(
        owner, "rival-1"
    )
    with collector_sql(world.collector.data_dir, world.collector.env) as db:
        user_id, partner_id = db.execute(
            "SELECT id, partner_id FROM users WHERE email = ?", (world.email(owner),)
        ).fetchone()
        key_id = db.execute("SELECT id FROM api_keys WHERE user_id = ?", (user_id,)).fetchone()[0]
        token_id = db.execute(
            "SELECT id FROM enrollment_tokens WHERE partner_id = ?", (partner_id,)
        ).fetchone()[0]
        contract = db.execute(
            "SELECT contract_id FROM incidents WHERE id = ?", (world.incidents[server],)
        ).fetchone()[0]
        notify = {
            name: str(
                db.execute(
                    f"SELECT id FROM {table} WHERE partner_id = ?", (partner_id,)
                ).fetchone()[0]
            )
            for name, table in (
                ("channel_id", "notify_channels"),
                ("route_id", "notify_routes"),
                ("silence_id", "notify_silences"),
            )
        }
    return {
        "server_id": world.servers[server],
        "incident_id": world.incidents[server],
        "contract_id": contract,
        "key_id": str(key_id),
        "token_id": str(token_id),
        "user_id": str(user_id),
        "backup_id": "latest",
        "hostname": server,
        **notify,
    }


def _fill(template: str, ids: dict[str, str], customer: bool) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "action":
            if template.startswith(("/api/v1/users", "/settings/users")):
                return "disable"
            return "accept" if customer else "acknowledge"
        if name not in ids:
            raise AssertionError(f"the walk does not know placeholder {{{name}}} of {template}")
        return urllib.parse.quote(ids[name], safe="")

    return re.sub(r"\{(\w+)\}", one, template)


class Asker:
    """A user of the world asking over the API (its key) and the pages (its sign-in)."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.key = world.keys[name]
        status, self.cookie, _ = sign_in(world.collector, world.email(name), world.passwords[name])
        assert status == 302
        self.csrf = csrf_of(page(world.collector, "/", self.cookie)[1])

    def ask(self, method: str, path: str) -> tuple[int, bytes]:
        url = self.world.collector.url + path
        if path.startswith("/api/"):
            headers = {"Authorization": f"Bearer {self.key}"}
            body = None
            if method in ("POST", "PUT"):
                body, headers["Content-Type"] = b"{}", "application/json"
            status, _, out = http(method, url, body, headers)
            return status, out
        if method == "GET":
            status, _, out = http_no_redirect("GET", url, headers=self.cookie)
            return status, out
        form = urllib.parse.urlencode({"csrf": self.csrf}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self.cookie}
        status, _, out = http_no_redirect(method, url, form, headers)
        return status, out


PAIRS = [
    ("acme-admin", "rival-admin"),
    ("rival-admin", "acme-admin"),
    ("museum", "bakery"),
    ("bakery", "museum"),
    ("museum", "rival-admin"),
]


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, str]]:
    found = app_routes()
    assert ("GET", "/servers/{server_id}") in found and (
        "DELETE",
        "/api/v1/api-keys/{key_id}",
    ) in found
    assert set(NOTIFY_PAGES) <= set(found), set(NOTIFY_PAGES) - set(found)
    return found


NOTIFY_PAGES = (
    ("GET", "/settings/notifications/channels/{channel_id}"),
    ("POST", "/settings/notifications/channels/{channel_id}/test"),
    ("POST", "/settings/notifications/channels/{channel_id}/remove"),
    ("POST", "/settings/notifications/routes/{route_id}/remove"),
    ("POST", "/settings/notifications/silences/{silence_id}/end"),
    ("POST", "/servers/{server_id}/silence"),
)
"""The notification pages' routes that name an object: walked like every other."""


def _walks(routes: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for method, template in routes:
        if "{" in template and (method, template) not in NOT_TENANT_ROUTES:
            yield method, template


@pytest.mark.parametrize(("asker", "owner"), PAIRS)
def test_every_route_with_another_organisations_ids_answers_not_found(
    world: World, routes: list[tuple[str, str]], asker: str, owner: str
) -> None:
    me = Asker(world, asker)
    customer = asker in ("museum", "bakery")
    theirs, mine = _ids(world, owner), _ids(world, asker)
    walked, closed = [], []
    for method, template in _walks(routes):
        path = _fill(template, theirs, customer)
        status, body = me.ask(method, path)
        walked.append(template)
        if status == 403:  # the route is closed to this role: the same for its own ids
            own_status, _ = me.ask(method, _fill(template, mine, customer))
            assert own_status == 403, (asker, method, template, own_status)
            closed.append(template)
            continue
        assert status == 404, (asker, owner, method, path, status, body[:300])
        assert theirs["hostname"].encode() not in body
    assert len(walked) >= 20, walked
    # A partner's admin may use every route: each one answered 404. A customer's user
    # reaches its servers' and incidents' routes, and they answered 404 as well.
    assert not closed if not customer else len(walked) - len(closed) >= 10, closed


@pytest.mark.parametrize(("asker", "owner"), PAIRS)
def test_no_list_names_another_organisations_objects(
    world: World, routes: list[tuple[str, str]], asker: str, owner: str
) -> None:
    me = Asker(world, asker)
    theirs = _ids(world, owner)
    secret = [theirs["server_id"], theirs["incident_id"], theirs["hostname"]]
    if owner == "rival-admin":
        secret.append(theirs["contract_id"])
    for method, template in routes:
        if method != "GET" or "{" in template or template in OPEN_PAGES:
            continue
        if template == "/api/v1/sla/due":  # a calculator of due times: no one's data
            continue
        month = time.strftime("%Y-%m")
        for query in ("?month=" + month, "?state=all&month=" + month, "?q=-1&month=" + month):
            path = template + query
            status, body = me.ask("GET", path)
            assert status in (200, 403), (asker, path, status)
            for s in secret:
                assert s.encode() not in body, (asker, path, s)
            if template == "/api/v1/servers" and status == 200:
                hosts = {v["hostname"] for v in json.loads(body)["servers"]}
                assert theirs["hostname"] not in hosts


def test_a_customer_sees_only_its_own_servers_and_incidents(world: World) -> None:
    museum = Asker(world, "museum")
    status, body = museum.ask("GET", "/api/v1/servers")
    assert status == 200
    assert {v["hostname"] for v in json.loads(body)["servers"]} == {"museum-1"}
    status, body = museum.ask("GET", "/api/v1/incidents")
    incidents = json.loads(body)["incidents"]  # the world's, and what the checks opened
    assert world.incidents["museum-1"] in {i["id"] for i in incidents}
    assert {i["server_id"] for i in incidents} == {world.servers["museum-1"]}
    status, body = museum.ask("GET", "/")
    assert status == 200 and b"museum-1" in body and b"acme-free" not in body


def test_another_partners_notification_objects_stay_untouched(world: World) -> None:
    """The walk's 404s changed nothing: the channel, route and silence it named are there,
    and a silence form naming another partner's server is refused."""
    rival = Asker(world, "rival-admin")
    acme = _ids(world, "acme-admin")
    for method, template in NOTIFY_PAGES:
        status, body = rival.ask(method, _fill(template, acme, False))
        assert status == 404 and b"acme desk" not in body, (template, status)
    with collector_sql(world.collector.data_dir, world.collector.env) as db:
        channel = db.execute(
            "SELECT removed_at FROM notify_channels WHERE id = ?", (acme["channel_id"],)
        ).fetchone()
        route = db.execute("SELECT 1 FROM notify_routes WHERE id = ?", (acme["route_id"],))
        silence = db.execute(
            "SELECT ends_at FROM notify_silences WHERE id = ?", (acme["silence_id"],)
        ).fetchone()
        tests = db.execute(
            "SELECT count(*) FROM notify_messages WHERE channel_id = ? AND kind = 'test'",
            (acme["channel_id"],),
        ).fetchone()
        assert channel == (None,) and route.fetchone() == (1,) and silence[0] > time.time()
        assert tests == (0,)
        form = urllib.parse.urlencode(
            {"csrf": rival.csrf, "scope": "server", "value": acme["server_id"], "duration": "1h"}
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **rival.cookie}
        url = world.collector.url + "/settings/notifications/silences"
        status, _, body = http_no_redirect("POST", url, form, headers)
        assert status == 400 and b"no server" in body and b"museum-1" not in body
        rival_id = db.execute("SELECT id FROM partners WHERE name = 'rival'").fetchone()[0]
        assert not db.execute(
            "SELECT 1 FROM notify_silences WHERE partner_id = ? AND value = ?",
            (rival_id, acme["server_id"]),
        ).fetchall()


VENDOR_READS = (
    "/servers/{server_id}",
    "/api/v1/servers/{server_id}",
    "/api/v1/servers/{server_id}/cameras",
    "/api/v1/servers/{server_id}/storage-history",
)
"""Routes that name a partner's object and that the vendor reads, whoever's it is."""


@pytest.mark.parametrize("owner", ["acme-admin", "rival-admin"])
def test_the_vendor_reads_every_partners_objects_and_changes_none(
    world: World, routes: list[tuple[str, str]], owner: str
) -> None:
    """The vendor's viewer reads each partner's servers; every route that changes
    something answers 403 to it, with either partner's ids (nothing is changed)."""
    me = Asker(world, "vendor-viewer")
    theirs = _ids(world, owner)

    def stored() -> tuple[object, ...]:
        with collector_sql(world.collector.data_dir, world.collector.env) as db:
            incident = db.execute(
                "SELECT state, events FROM incidents WHERE id = ?", (theirs["incident_id"],)
            ).fetchone()
            server = db.execute(
                "SELECT revoked_at, report_interval_s FROM servers WHERE id = ?",
                (theirs["server_id"],),
            ).fetchone()
            keys = db.execute("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL").fetchone()
        return tuple(incident), tuple(server), tuple(keys)

    before = stored()
    for template in VENDOR_READS:
        status, body = me.ask("GET", _fill(template, theirs, False))
        assert status == 200, (template, status, body[:300])
        assert theirs["server_id"].encode() in body, template
    status, body = me.ask("GET", _fill("/servers/{server_id}", theirs, False))
    assert theirs["hostname"].encode() in body
    changed = 0
    for method, template in routes:
        if method in ("GET", "HEAD") or template in ("/login", "/logout", "/forgot-password"):
            continue
        if template.startswith(("/reset-password", "/api/v1/api-keys", "/settings/api-keys")):
            continue  # open forms, and the viewer's own keys
        status, _ = me.ask(method, _fill(template, theirs, False))
        assert status == 403, (method, template, status)
        changed += 1
    assert changed >= 20
    assert stored() == before


def test_the_vendor_lists_both_partners_and_partners_never_see_the_vendor(world: World) -> None:
    me = Asker(world, "vendor-viewer")
    status, body = me.ask("GET", "/api/v1/servers")
    assert status == 200
    listed = {(v["partner"], v["hostname"]) for v in json.loads(body)["servers"]}
    assert {("acme", "museum-1"), ("rival", "rival-1")} <= listed
    status, body = me.ask("GET", "/api/v1/incidents")
    assert {i["partner"] for i in json.loads(body)["incidents"]} >= {"acme", "rival"}
    for path in ("/", "/incidents", "/contracts"):
        status, body = me.ask("GET", path)
        assert status == 200 and (b"museum-1" in body or path == "/contracts"), path
        assert b"rival" in body and b"acme" in body, path
    status, body = me.ask("GET", "/?partner=rival")
    assert b"rival-1" in body and b"museum-1" not in body
    for partner in ("acme-admin", "rival-admin", "museum"):
        status, body = Asker(world, partner).ask("GET", "/api/v1/servers")
        assert status == 200 and b"vigil-ops" not in body
        status, body = Asker(world, partner).ask("GET", "/api/v1/users")
        assert b"vendor-viewer" not in body

"""The notification pages (channels, routes, silences), "silence this server" and the
incidents page's workaround, over a real collector: what each role may post, what the
forms refuse (with words, never a 500) and that every change is the notify store's own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.notify.receivers import WebhookReceiver
from tests.portal.world import World, call, page, post_form, sign_in

BASE = "/settings/notifications"


@pytest.fixture(scope="module")
def cookies(world: World) -> dict[str, dict[str, str]]:
    out = {}
    for user in ("acme-admin", "acme-operator", "acme-viewer", "museum"):
        status, cookie, _ = sign_in(world.collector, world.email(user), world.passwords[user])
        assert status == 302
        out[user] = cookie
    return out


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


def _api(world: World, path: str) -> object:
    status, out = call(world.collector, world.keys["acme"], "GET", path)
    assert status == 200, out
    return out


def test_admin_adds_a_webhook_sees_its_secret_once_and_tests_it(
    world: World, cookies: dict[str, dict[str, str]], receiver: WebhookReceiver
) -> None:
    c, admin = world.collector, cookies["acme-admin"]
    fields = {"type": "webhook", "name": "night desk", "url": receiver.url}
    status, _, body = post_form(c, f"{BASE}/channels", admin, fields)
    assert status == 201, body[:400]
    secret = re.search(rb'id="new-secret">(whsec_[^<]+)<', body)
    assert secret is not None
    receiver.secrets.append(secret.group(1).decode())
    chans = _api(world, "/api/v1/notify/channels")["channels"]  # type: ignore[index]
    ch = next(x for x in chans if x["name"] == "night desk")
    assert ch["config"] == {"url": receiver.url}
    # Never again: neither the list nor the channel's own page shows it.
    for path in (BASE, f"{BASE}/channels/{ch['id']}"):
        status, body = page(c, path, admin)
        assert status == 200 and secret.group(1) not in body and b"night desk" in body

    status, headers, _ = post_form(c, f"{BASE}/channels/{ch['id']}/test", admin, {})
    assert status == 303 and "test+message+delivered" in dict(headers)["Location"]
    assert [h.json["type"] for h in receiver.delivered()] == ["test"]
    assert receiver.delivered()[0].verified
    status, body = page(c, f"{BASE}/channels/{ch['id']}", admin)
    log = body.split(b"Delivery log", 1)[1]
    assert b"delivered" in log and b"200" in log and b" ms" in log


def test_an_unhealthy_channel_is_marked(world: World, cookies: dict[str, dict[str, str]]) -> None:
    c, admin = world.collector, cookies["acme-admin"]
    fields = {"type": "webhook", "name": "dead desk", "url": "http://127.0.0.1:9/hook"}
    status, _, _ = post_form(c, f"{BASE}/channels", admin, fields)
    assert status == 201
    chans = _api(world, "/api/v1/notify/channels")["channels"]  # type: ignore[index]
    cid = next(x["id"] for x in chans if x["name"] == "dead desk")
    for _ in range(3):
        status, headers, _ = post_form(c, f"{BASE}/channels/{cid}/test", admin, {})
        assert status == 303 and "failed" in dict(headers)["Location"]
    status, body = page(c, BASE, admin)
    row = body.split(f'id="{cid}"'.encode(), 1)[1].split(b"</tr>", 1)[0]
    assert b"unhealthy" in row and b"3 failures in a row" in row
    status, body = page(c, "/", admin)  # above the fleet too
    assert (
        f'href="/settings/notifications/channels/{cid}">dead desk</a> is unhealthy'.encode() in body
    )
    status, _, _ = post_form(c, f"{BASE}/channels/{cid}/remove", admin, {})
    assert status == 303
    status, body = page(c, BASE, admin)
    assert cid.encode() not in body
    assert page(c, f"{BASE}/channels/{cid}", admin)[0] == 404


ROUTE_REFUSALS = [
    ({"repeat": "soon"}, "the repeat interval is a duration"),
    ({"repeat": "30s"}, "repeat interval &gt;= 60 s"),
    ({"min_severity": "loud"}, "severity must be one of"),
    ({"quiet_from": "22:00"}, "quiet hours need both"),
    ({"quiet_from": "22:00", "quiet_until": "25:00"}, "quiet hours are HH:MM"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"digest_hour": "nine"}, "digest hour is a whole number"),
    ({"digest_hour": "30"}, "the digest hour is 0 to 23"),
    ({"channel": "ch_nothere"}, "no channel"),
]


@pytest.mark.parametrize(("bad", "words"), ROUTE_REFUSALS)
def test_a_bad_route_is_refused_with_words(
    world: World, cookies: dict[str, dict[str, str]], bad: dict[str, str], words: str
) -> None:
    chans = _api(world, "/api/v1/notify/channels")["channels"]  # type: ignore[index]
    fields = {"channel": chans[0]["id"], "kinds": "*", **bad}
    status, _, body = post_form(world.collector, f"{BASE}/routes", cookies["acme-admin"], fields)
    assert status == 400, body[:300]
    assert words.encode() in body, body.split(b'role="alert"', 1)[-1][:300]


def test_admin_adds_and_removes_a_route(world: World, cookies: dict[str, dict[str, str]]) -> None:
    c, admin = world.collector, cookies["acme-admin"]
    chans = _api(world, "/api/v1/notify/channels")["channels"]  # type: ignore[index]
    fields = {
        "channel": chans[0]["id"],
        "kinds": "camera.*, backup.overdue",
        "min_severity": "warning",
        "site": "Hall 2",
        "group_wait": "1m",
        "repeat": "2h",
        "digest": "1",
        "digest_hour": "7",
        "quiet_from": "22:00",
        "quiet_until": "06:00",
        "timezone": "Europe/Berlin",
    }
    status, headers, _ = post_form(c, f"{BASE}/routes", admin, fields)
    assert status == 303, headers
    routes = _api(world, "/api/v1/notify/routes")["routes"]  # type: ignore[index]
    made = routes[-1]
    assert made["kinds"] == ["camera.*", "backup.overdue"]
    assert (made["min_severity"], made["site"], made["group_wait_s"], made["repeat_s"]) == (
        "warning",
        "Hall 2",
        60.0,
        7200.0,
    )
    assert made["send_resolved"] is False and made["digest"] is True
    assert made["quiet_hours"] == {"from": "22:00", "until": "06:00", "timezone": "Europe/Berlin"}
    status, _, _ = post_form(c, f"{BASE}/routes/{made['id']}/remove", admin, {})
    assert status == 303
    assert made["id"] not in [r["id"] for r in _api(world, "/api/v1/notify/routes")["routes"]]  # type: ignore[index]


def test_operator_silences_a_server_from_its_page_and_ends_it(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c, op = world.collector, cookies["acme-operator"]
    sid = world.servers["bakery-1"]
    status, body = page(c, f"/servers/{sid}", op)
    assert b"Silence this server" in body
    fields = {"duration": "3h", "reason": "disk swap"}
    status, headers, _ = post_form(c, f"/servers/{sid}/silence", op, fields)
    assert status == 303
    assert dict(headers)["Location"].startswith(f"/servers/{sid}?done=silence+")
    silences = _api(world, "/api/v1/notify/silences")["silences"]  # type: ignore[index]
    made = next(s for s in silences if s["value"] == sid)
    assert made["scope"] == "server" and made["reason"] == "disk swap"
    assert 3 * 3600 - 120 < made["ends_at"] - made["starts_at"] <= 3 * 3600
    status, body = page(c, f"/servers/{sid}", op)
    assert b"silenced" in body and b"disk swap" in body

    fields = {"back": f"/servers/{sid}"}
    status, headers, _ = post_form(c, f"{BASE}/silences/{made['id']}/end", op, fields)
    assert status == 303 and dict(headers)["Location"].startswith(f"/servers/{sid}?done=")
    silences = _api(world, "/api/v1/notify/silences")["silences"]  # type: ignore[index]
    assert made["id"] not in [s["id"] for s in silences]
    status, body = page(c, BASE, op)
    ended = body.split(b"<h3>Ended</h3>", 1)[1]
    assert f"#{made['id']}".encode() in ended and b"disk swap" in ended
    # Ended once: a second end is a 404 like any silence that is not running.
    assert post_form(c, f"{BASE}/silences/{made['id']}/end", op, {})[0] == 404


def test_silence_from_the_fleet_and_for_a_site_until_a_time(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c, op = world.collector, cookies["acme-operator"]
    sid = world.servers["acme-free"]
    status, body = page(c, "/", op)
    assert f'action="/servers/{sid}/silence"'.encode() in body
    status, headers, _ = post_form(
        c, f"/servers/{sid}/silence", op, {"duration": "1h", "back": "/"}
    )
    assert status == 303 and dict(headers)["Location"].startswith("/?done=silence+")
    until = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 2 * 86400))
    fields = {"scope": "site", "value": "Hall 2", "until": until, "reason": "rewiring"}
    status, headers, _ = post_form(c, f"{BASE}/silences", op, fields)
    assert status == 303, headers
    silences = _api(world, "/api/v1/notify/silences")["silences"]  # type: ignore[index]
    site = next(s for s in silences if s["value"] == "Hall 2")
    assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(site["ends_at"])) == until


SILENCE_REFUSALS = [
    ({"scope": "server", "value": "srv_nothere", "duration": "1h"}, "no server"),
    ({"scope": "site", "value": "", "duration": "1h"}, "name the site"),
    ({"scope": "galaxy", "value": "x", "duration": "1h"}, "scope must be one of"),
    ({"scope": "customer", "value": "Museum"}, "a silence needs an end"),
    ({"scope": "customer", "value": "Museum", "duration": "a while"}, "the duration is like"),
    ({"scope": "customer", "value": "Museum", "duration": "1000d"}, "at most a year"),
    ({"scope": "customer", "value": "Museum", "until": "yesterday"}, "is not a date"),
    ({"scope": "customer", "value": "Museum", "until": "2001-01-01T00:00"}, "has passed"),
]


@pytest.mark.parametrize(("bad", "words"), SILENCE_REFUSALS)
def test_a_bad_silence_is_refused_with_words(
    world: World, cookies: dict[str, dict[str, str]], bad: dict[str, str], words: str
) -> None:
    status, _, body = post_form(world.collector, f"{BASE}/silences", cookies["acme-operator"], bad)
    assert status == 400, body[:300]
    assert words.encode() in body


def test_bad_channels_and_a_bad_server_silence_are_refused_with_words(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c, admin = world.collector, cookies["acme-admin"]
    for fields, words in (
        ({"type": "pigeon"}, b"channel type must be one of"),
        ({"type": "webhook", "url": "ftp://x"}, b"needs an http:// or https:// url"),
        ({"type": "webhook", "url": "http://x", "secret": "plain"}, b"starts with whsec_"),
        ({"type": "smtp", "host": "mail.example"}, b"needs &#39;to&#39;"),
        ({"type": "smtp", "port": "smtp"}, b"the port is a number"),
        ({"type": "smtp", "host": "h", "to": "a@b", "from": "c@d", "port": "99999"}, b"port is"),
        ({"type": "apprise"}, b"needs its URL"),
    ):
        status, _, body = post_form(c, f"{BASE}/channels", admin, fields)
        assert status == 400 and words in body, (fields, body[:300])
    sid = world.servers["museum-1"]
    status, _, body = post_form(c, f"/servers/{sid}/silence", admin, {"duration": "later"})
    assert status == 400 and b"the duration is like" in body


def test_a_viewer_reads_but_cannot_post(world: World, cookies: dict[str, dict[str, str]]) -> None:
    c, viewer = world.collector, cookies["acme-viewer"]
    status, body = page(c, BASE, viewer)
    assert status == 200 and b"night desk" in body
    assert b"Add channel" not in body and b"Create silence" not in body
    status, body = page(c, f"/servers/{world.servers['museum-1']}", viewer)
    assert b"Silence this server" not in body
    chans = _api(world, "/api/v1/notify/channels")["channels"]  # type: ignore[index]
    cid = chans[0]["id"]
    before = _api(world, "/api/v1/notify/silences")
    for path in (
        f"{BASE}/channels",
        f"{BASE}/channels/{cid}/test",
        f"{BASE}/channels/{cid}/remove",
        f"{BASE}/routes",
        f"{BASE}/silences",
        f"/servers/{world.servers['museum-1']}/silence",
    ):
        fields = {"type": "webhook", "url": "http://127.0.0.1:9/", "duration": "1h"}
        status, _, body = post_form(c, path, viewer, {**fields, "scope": "partner"})
        assert status == 403 and b"Not allowed" in body, (path, status)
    assert _api(world, "/api/v1/notify/silences") == before


def test_an_operator_silences_but_does_not_manage_channels_or_routes(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c, op = world.collector, cookies["acme-operator"]
    status, body = page(c, BASE, op)
    assert b"Create silence" in body and b"Add channel" not in body and b"Add route" not in body
    for path in (f"{BASE}/channels", f"{BASE}/routes"):
        assert post_form(c, path, op, {"type": "webhook", "url": "http://x/"})[0] == 403
    # The API agrees: an operator's key may create a silence, not a channel.
    key = world.keys["acme-operator"]
    body = {"scope": "partner", "duration_s": 600, "reason": "api"}
    status, made = call(c, key, "POST", "/api/v1/notify/silences", body)
    assert status == 201, made
    assert call(c, key, "DELETE", f"/api/v1/notify/silences/{made['id']}")[0] == 200
    assert call(c, key, "POST", "/api/v1/notify/channels", {"type": "webhook"})[0] == 403


def test_a_customer_user_does_not_see_the_notification_pages(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c, museum = world.collector, cookies["museum"]
    assert page(c, BASE, museum)[0] == 403
    status, body = page(c, f"/servers/{world.servers['museum-1']}", museum)
    assert status == 200 and b"Silence this server" not in body
    assert post_form(c, f"/servers/{world.servers['museum-1']}/silence", museum, {})[0] == 403


def test_workaround_stops_the_p1_resolution_clock(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c = world.collector
    body = {
        "contract_id": "A-M",
        "priority": "P1",
        "server_id": world.servers["museum-1"],
        "title": "recording stopped",
    }
    status, inc = call(c, world.keys["acme"], "POST", "/api/v1/incidents", body)
    assert status == 201, inc
    assert inc["resolution"]["stopped_at"] is None and inc["workaround_at"] is None
    status, body_ = page(c, "/incidents", cookies["acme-viewer"])
    assert f"workaround {inc['id']}".encode() not in body_
    path = f"/incidents/{inc['id']}/workaround"
    assert post_form(c, path, cookies["acme-viewer"], {"note": "x"})[0] == 403
    status, body_ = page(c, "/incidents", cookies["acme-operator"])
    assert f'aria-label="workaround {inc["id"]}"'.encode() in body_
    status, headers, _ = post_form(c, path, cookies["acme-operator"], {"note": "spare NVR"})
    assert status == 303, headers
    status, after = call(c, world.keys["acme"], "GET", f"/api/v1/incidents/{inc['id']}")
    assert after["state"] == "workaround" and after["workaround_at"] is not None
    assert after["resolution"]["stopped_at"] == after["workaround_at"]
    assert after["events"][-1]["note"] == "spare NVR"
    assert after["events"][-1]["by"] == world.email("acme-operator")
    status, body_ = page(c, "/incidents", cookies["acme-operator"])
    row = body_.split(f'<tr id="{inc["id"]}">'.encode(), 1)[1].split(b"</tr>", 1)[0]
    assert b"workaround in place since" in row
    assert f'aria-label="resolve {inc["id"]}"'.encode() in row
    assert f'aria-label="workaround {inc["id"]}"'.encode() not in row


def test_follow_up_due_times_are_on_the_incidents_page(
    world: World, cookies: dict[str, dict[str, str]]
) -> None:
    c = world.collector
    inc = world.incidents["bakery-1"]  # maintenance-support: a follow-up has a due time
    status, out = call(c, world.keys["acme"], "POST", f"/api/v1/incidents/{inc}/contact", {})
    assert status == 200, out
    due = out["followups"][-1]["due"]
    assert due
    status, body = page(c, "/incidents?state=all", cookies["acme-operator"])
    row = body.split(f'<tr id="{inc}">'.encode(), 1)[1].split(b"</tr>", 1)[0]
    shown = f"answer due {due[:10]} {due[11:16]}"
    assert shown.encode() in row, row


def test_pause_from_the_page_records_why(world: World, cookies: dict[str, dict[str, str]]) -> None:
    """The pause form carries its note (a pause records why); without one it is refused."""
    c, op = world.collector, cookies["acme-operator"]
    inc = world.incidents["museum-1"]
    status, body = page(c, "/incidents", op)
    row = body.split(f'<tr id="{inc}">'.encode(), 1)[1].split(b"</tr>", 1)[0]
    assert f'action="/incidents/{inc}/pause"'.encode() in row and b'name="note"' in row
    status, _, body = post_form(c, f"/incidents/{inc}/pause", op, {})
    assert status == 409 and b"why (note)" in body
    status, _, _ = post_form(c, f"/incidents/{inc}/pause", op, {"note": "waiting for a part"})
    assert status == 303
    status, after = call(c, world.keys["acme"], "GET", f"/api/v1/incidents/{inc}")
    assert after["state"] == "paused" and after["events"][-1]["note"] == "waiting for a part"

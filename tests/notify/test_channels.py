"""E-mail (aiosmtpd on 127.0.0.1), Apprise (``json://`` to a local receiver), secret
rotation and the test message, through a real collector's API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from collector.notify import store
from collector.notify.channel_secrets import SecretBox, load_notify_key, new_webhook_secret
from harness.database import database_text
from harness.net import wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for
from harness.tls import self_signed
from tests.notify.receivers import MailCatcher, WebhookReceiver
from tests.notify.support import T0, Clock, make_db, notifier
from tests.notify.test_webhook_delivery import api, cams

CONFIG = """
[notify]
interval_s = 0.2
retry_base_s = 0.3
allow_private_targets = true
sweep_interval_s = 3600
public_url = "https://vigil.example.net"
"""


@pytest.fixture
def notify_collector(tmp_path: Path):
    cfg = tmp_path / "collector.toml"
    cfg.write_text(CONFIG)
    c = Collector(tmp_path / "collector", config=cfg).start()
    yield c
    c.stop()


def _camera_down(c: Collector, make_agent, token: str) -> str:
    agent = make_agent()
    server_id = agent.enroll(c.url, token)
    session = session_for(agent.state_dir, c.url)
    post_signed(c.url, session, "/api/v1/agent/reports", batch(report(1, cameras=cams(3, "ok"))))
    post_signed(
        c.url, session, "/api/v1/agent/reports", batch(report(2, cameras=cams(3, "unreachable")))
    )
    return server_id


def test_mail_has_server_change_since_advice_and_link_in_text_and_html(
    notify_collector: Collector, make_agent
) -> None:
    c = notify_collector
    mail = MailCatcher(auth=("desk", "s3cret"))
    try:
        key, token = c.partner("acme")
        config = {
            "host": "127.0.0.1",
            "port": mail.port,
            "security": "none",
            "username": "desk",
            "from": "vigil@example.net",
            "to": "desk@example.net",
        }
        status, ch = api(
            c,
            key,
            "POST",
            "/api/v1/notify/channels",
            {"type": "smtp", "name": "desk mail", "config": config, "secret": "s3cret"},
        )
        assert status == 201 and "secret" not in ch
        api(c, key, "POST", "/api/v1/notify/routes", {"channel": ch["id"], "group_wait_s": 0.5})
        server_id = _camera_down(c, make_agent, token)
        wait_until(lambda: mail.messages, 30, what="a mail")
        [msg] = mail.messages
        assert msg["Subject"].startswith("[Vigil HIGH] 3 × camera.down on rec-01")
        text = msg.get_body(("plain",)).get_content()
        assert "Server: rec-01" in text
        assert "What changed: camera cam-00 down (unreachable)" in text
        assert "Since: 20" in text
        assert "What to do: Check the camera's power" in text
        assert f"https://vigil.example.net/servers/{server_id}" in text
        html = msg.get_body(("html",)).get_content()
        assert "<td>rec-01</td>" in html and f"/servers/{server_id}" in html
    finally:
        mail.close()


def test_apprise_json_url_reaches_a_local_receiver_and_the_cli_test_message(
    notify_collector: Collector,
) -> None:
    c = notify_collector
    rx = WebhookReceiver()
    try:
        key, _ = c.partner("acme")
        url = rx.url.replace("http://", "json://")
        status, ch = api(
            c,
            key,
            "POST",
            "/api/v1/notify/channels",
            {"type": "apprise", "name": "chat", "secret": url},
        )
        assert status == 201 and url not in json.dumps(ch)
        out = c.cli("notify", "test", "--channel", ch["id"])
        assert "ok" in out
        [hit] = rx.delivered()
        assert hit.json["title"].startswith("[Vigil INFO] Vigil test message")
        assert "this is a test message" in hit.json["message"]
        status, res = api(c, key, "POST", f"/api/v1/notify/channels/{ch['id']}/test")
        assert status == 200 and res["ok"] is True
        assert len(rx.delivered()) == 2
        # Another partner cannot see, test or remove it.
        other, _ = c.partner("other")
        assert api(c, other, "GET", "/api/v1/notify/channels")[1] == {"channels": []}
        assert api(c, other, "POST", f"/api/v1/notify/channels/{ch['id']}/test")[0] == 404
        assert api(c, other, "DELETE", f"/api/v1/notify/channels/{ch['id']}")[0] == 404
    finally:
        rx.close()


def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(tmp_path) -> None:
    db = make_db(tmp_path)
    box = SecretBox(load_notify_key(tmp_path))
    old, new = new_webhook_secret(), new_webhook_secret()
    only_old, only_new = WebhookReceiver(secrets=[old]), WebhookReceiver(secrets=[new])
    clock = Clock()

    def add(c, url):
        return store.add_channel(c, box, 1, "webhook", "w", {"url": url}, old, T0).id

    ids = [db.write_sync(lambda c, u=r.url: add(c, u)) for r in (only_old, only_new)]
    for cid in ids:
        db.write_sync(lambda c, cid=cid: store.rotate_secret(c, box, 1, cid, new, 3600, T0))
    n = notifier(db, box, clock)

    async def send_all():
        out = [await n.send_test(cid) for cid in ids]
        clock.t = T0 + 3601  # the overlap is over: only the new secret signs
        out += [await n.send_test(cid) for cid in ids]
        await n.close()
        return out

    results = asyncio.run(send_all())
    assert [r.ok for r in results] == [True, True, False, True]
    first = only_old.hits[0].headers["webhook-signature"].split(" ")
    assert len(first) == 2 and all(s.startswith("v1,") for s in first)
    assert len(only_old.hits[1].headers["webhook-signature"].split(" ")) == 1
    # Stored encrypted: the secret is not in the database (file, or PostgreSQL rows).
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("vigil.db*"))
    stored += database_text(tmp_path)
    assert new.encode() not in stored and old.encode() not in stored
    only_old.close()
    only_new.close()
    db.close()


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_mail_over_starttls_or_tls_with_a_login(tmp_path, security) -> None:
    """The server requires TLS and a login (aiosmtpd refuses mail without both)."""
    ctx, ca = self_signed(tmp_path)
    mail = MailCatcher(auth=("desk", "pw"), tls=ctx, implicit_tls=security == "tls")
    db = make_db(tmp_path)
    box = SecretBox(load_notify_key(tmp_path))
    config = {
        "host": "127.0.0.1",
        "port": mail.port,
        "security": security,
        "username": "desk",
        "from": "vigil@example.net",
        "to": "desk@example.net",
        "cafile": str(ca),
    }
    ids = [db.write_sync(lambda c: store.add_channel(c, box, 1, "smtp", "m", config, "pw", T0).id)]
    n = notifier(db, box, Clock())

    async def send():
        try:
            return [await n.send_test(cid) for cid in ids]
        finally:
            await n.close()

    [good] = asyncio.run(send())
    mail.close()
    db.close()
    assert good.ok, good.answer
    [msg] = mail.messages
    assert "Vigil test message" in msg["Subject"]


def test_private_targets_are_refused_unless_allowed(tmp_path) -> None:
    """A partner cannot make the collector call its own network and read the answer."""
    db = make_db(tmp_path)
    box = SecretBox(load_notify_key(tmp_path))
    rx = WebhookReceiver()
    smtp_config = {"host": "localhost", "port": 25, "from": "a@b.c", "to": "d@e.f"}

    def add(c):
        return [
            store.add_channel(c, box, 1, "webhook", "w", {"url": rx.url}, "", T0).id,
            store.add_channel(c, box, 1, "webhook", "w", {"url": "http://localhost:9/"}, "", T0).id,
            store.add_channel(c, box, 1, "smtp", "m", smtp_config, "", T0).id,
            store.add_channel(c, box, 1, "apprise", "a", {}, rx.url.replace("http", "json"), T0).id,
        ]

    ids = db.write_sync(add)
    n = notifier(db, box, Clock(), allow_private_targets=False)

    async def send():
        try:
            return [await n.send_test(cid) for cid in ids]
        finally:
            await n.close()

    results = asyncio.run(send())
    rx.close()
    db.close()
    assert [r.ok for r in results] == [False] * 4
    assert all("private address" in r.answer for r in results), results
    assert rx.hits == []

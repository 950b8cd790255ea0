"""Webhooks end to end: a real collector, a signed agent report, a receiver on 127.0.0.1
that checks the Standard Webhooks signature with the reference library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.net import http, wait_until
from harness.processes import Collector
from harness.signed import batch, post_signed, report, session_for
from tests.notify.receivers import WebhookReceiver

NOTIFY_CONFIG = """
[notify]
interval_s = 0.2
retry_base_s = 0.3
allow_private_targets = true
retry_max_s = 1
sweep_interval_s = 3600
"""


def cams(n: int, verdict: str) -> list[dict[str, object]]:
    return [{"key": f"cam-{i:02d}", "address": f"10.0.0.{i}", "verdict": verdict} for i in range(n)]


def api(c: Collector, key: str, method: str, path: str, body: object | None = None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    status, _, out = http(method, c.url + path, data, headers)
    return status, json.loads(out) if out else None


@pytest.fixture
def notify_collector(tmp_path: Path):
    cfg = tmp_path / "collector.toml"
    cfg.write_text(NOTIFY_CONFIG)
    c = Collector(tmp_path / "collector", config=cfg).start()
    yield c
    c.stop()


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def test_twelve_cameras_down_make_one_signed_message_delivered_once_after_two_500s(
    notify_collector: Collector, make_agent, receiver: WebhookReceiver
) -> None:
    c = notify_collector
    key, token = c.partner("acme")
    agent = make_agent()
    server_id = agent.enroll(c.url, token)
    session = session_for(agent.state_dir, c.url)

    status, ch = api(
        c,
        key,
        "POST",
        "/api/v1/notify/channels",
        {"type": "webhook", "name": "desk", "config": {"url": receiver.url}},
    )
    assert status == 201, ch
    assert ch["secret"].startswith("whsec_")
    receiver.secrets.append(ch["secret"])
    status, _ = api(
        c,
        key,
        "POST",
        "/api/v1/notify/routes",
        {"channel": ch["id"], "kinds": ["camera.*"], "group_wait_s": 1},
    )
    assert status == 201
    # The secret is never shown again.
    _, listed = api(c, key, "GET", "/api/v1/notify/channels")
    assert "secret" not in json.dumps(listed["channels"][0]).replace("secret_rotating", "")

    post_signed(c.url, session, "/api/v1/agent/reports", batch(report(1, cameras=cams(12, "ok"))))
    receiver.fail_first = 2
    status, _ = post_signed(
        c.url, session, "/api/v1/agent/reports", batch(report(2, cameras=cams(12, "unreachable")))
    )
    assert status == 200

    wait_until(lambda: receiver.delivered(), 30, what="the webhook delivered")
    assert [h.status for h in receiver.hits] == [500, 500, 200]
    assert all(h.verified for h in receiver.hits)
    assert len({h.headers["webhook-id"] for h in receiver.hits}) == 1  # one message, retried
    body = receiver.delivered()[0].json
    assert body["type"] == "camera.down"
    assert body["data"]["status"] == "firing"
    events = body["data"]["events"]
    assert sorted(e["details"]["camera"] for e in events) == [f"cam-{i:02d}" for i in range(12)]
    assert {e["server"]["id"] for e in events} == {server_id}

    _, log = api(c, key, "GET", f"/api/v1/notify/channels/{ch['id']}/deliveries")
    assert [a["ok"] for a in log["attempts"]] == [True, False, False]
    assert log["attempts"][1]["answer"].startswith("HTTP 500")

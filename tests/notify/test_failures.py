"""Failures of the collector and of a receiver, seen from outside: a collector SIGKILLed
between a change and its notification, a channel that keeps failing (unhealthy in the
fleet view and in /metrics), the CLI's set-up commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.database import collector_sql
from harness.net import http, wait_until
from harness.processes import BIN, Collector
from harness.signed import batch, post_signed, report, session_for
from tests.notify.receivers import WebhookReceiver
from tests.notify.test_webhook_delivery import api, cams

CONFIG = """
[notify]
interval_s = 0.2
retry_base_s = 0.2
allow_private_targets = true
retry_max_s = 0.5
sweep_interval_s = 3600
"""


def _collector(tmp_path: Path) -> Collector:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(CONFIG)
    return Collector(tmp_path / "collector", config=cfg)


def _events(data_dir: Path) -> list[tuple[str, object]]:
    with collector_sql(data_dir) as conn:
        rows = conn.execute("SELECT dedup_key, routed_at FROM notify_events ORDER BY id")
        return [tuple(r) for r in rows.fetchall()]


def _messages(data_dir: Path) -> int:
    with collector_sql(data_dir) as conn:
        return conn.execute("SELECT COUNT(*) FROM notify_messages").fetchone()[0]


def test_killed_between_the_change_and_the_send_it_is_sent_once_after_restart(
    tmp_path: Path, make_agent
) -> None:
    c = _collector(tmp_path).start()
    rx = WebhookReceiver()
    try:
        _, token = c.partner("acme")
        agent = make_agent()
        agent.enroll(c.url, token)
        session = session_for(agent.state_dir, c.url)
        ch_id = c.last_line(
            "channel", "add", "--partner", "acme", "--type", "webhook", "--url", rx.url
        )
        c.cli(
            "route",
            "add",
            "--partner",
            "acme",
            "--channel",
            ch_id,
            "--group-wait",
            "3s",
            "--kinds",
            "camera.*",
        )
        post_signed(
            c.url, session, "/api/v1/agent/reports", batch(report(1, cameras=cams(2, "ok")))
        )
        status, _ = post_signed(
            c.url,
            session,
            "/api/v1/agent/reports",
            batch(report(2, cameras=cams(1, "unreachable") + cams(2, "ok")[1:])),
        )
        assert status == 200  # the change is committed, with its event
        c.kill()  # SIGKILL, within the group wait: nothing was sent
        assert rx.hits == []
        [(key, _routed)] = _events(c.data_dir)
        assert key.startswith("camera:") and key.endswith(":cam-00")
        assert _messages(c.data_dir) == 0
        c.start()
        wait_until(lambda: rx.delivered(), 30, what="the notification after restart")
        # A later change is delivered after it: by then the first was not sent again.
        session = session_for(agent.state_dir, c.url)  # sessions end with the process
        status, _ = post_signed(
            c.url, session, "/api/v1/agent/reports", batch(report(3, cameras=cams(2, "ok")))
        )
        assert status == 200
        wait_until(lambda: len(rx.delivered()) >= 2, 30, what="the resolved notice")
        kinds = [(h.json["type"], h.json["data"]["status"]) for h in rx.delivered()]
        assert kinds == [("camera.down", "firing"), ("camera.down", "resolved")]
        assert len({h.headers["webhook-id"] for h in rx.hits}) == 2
    finally:
        c.stop()
        rx.close()


def test_a_failing_channel_is_unhealthy_in_the_fleet_view_and_metrics(tmp_path: Path) -> None:
    c = _collector(tmp_path).start()
    rx = WebhookReceiver(down=True)
    try:
        key, _ = c.partner("acme")
        ch_id = c.last_line(
            "channel",
            "add",
            "--partner",
            "acme",
            "--type",
            "webhook",
            "--url",
            rx.url,
            "--name",
            "desk",
        )
        assert "whsec_" not in c.cli("channel", "list", "--partner", "acme", "--json")
        out = c.cli("notify", "test", "--channel", ch_id, check=False)
        assert "FAILED: HTTP 500" in out
        for _ in range(2):
            c.cli("notify", "test", "--channel", ch_id, check=False)
        status, fleet = c.api(key, "/api/v1/servers")
        assert status == 200
        [bad] = fleet["notify_channels_unhealthy"]
        assert bad["id"] == ch_id and bad["last_error"].startswith("HTTP 500")

        def metric() -> str:
            return http("GET", c.url + "/metrics")[2].decode()

        line = (
            f'vigil_notify_channel_healthy{{channel="{ch_id}",partner="acme",type="webhook"}} 0.0'
        )
        wait_until(lambda: line in metric(), 30, what="the channel's gauge")
        assert "UNHEALTHY" in c.cli("channel", "list", "--partner", "acme")
        rx.down = False
        assert "ok" in c.cli("notify", "test", "--channel", ch_id)
        assert c.api(key, "/api/v1/servers")[1]["notify_channels_unhealthy"] == []
    finally:
        c.stop()
        rx.close()


def test_cli_routes_and_silences_and_the_openapi_document(tmp_path: Path) -> None:
    c = _collector(tmp_path).start()
    try:
        key, _ = c.partner("acme")
        ch_id = c.last_line(
            "channel",
            "add",
            "--partner",
            "acme",
            "--type",
            "apprise",
            "--url",
            "json://127.0.0.1:9/x",
        )
        route = c.last_line(
            "route",
            "add",
            "--partner",
            "acme",
            "--channel",
            ch_id,
            "--kinds",
            "camera.*,server.*",
            "--quiet",
            "22:00-06:00",
            "--tz",
            "Europe/Berlin",
        )
        [r] = api(c, key, "GET", "/api/v1/notify/routes")[1]["routes"]
        assert str(r["id"]) == route and r["kinds"] == ["camera.*", "server.*"]
        assert r["quiet_hours"] == {"from": "22:00", "until": "06:00", "timezone": "Europe/Berlin"}
        sil = c.last_line(
            "silence",
            "add",
            "--partner",
            "acme",
            "--scope",
            "site",
            "--value",
            "Lobby",
            "--duration",
            "2h",
            "--reason",
            "cabling",
        )
        [s] = api(c, key, "GET", "/api/v1/notify/silences")[1]["silences"]
        assert str(s["id"]) == sil and s["value"] == "Lobby"
        c.cli("silence", "end", "--partner", "acme", sil)
        assert api(c, key, "GET", "/api/v1/notify/silences")[1]["silences"] == []
        bad = c.cli("route", "add", "--partner", "acme", "--channel", "ch_nope", check=False)
        assert "no channel" in bad
        status, err = api(
            c, key, "POST", "/api/v1/notify/routes", {"channel": ch_id, "min_severity": "loud"}
        )
        assert status == 400 and err["field"] == "min_severity"
        doc = http("GET", c.url + "/api/v1/openapi.json")[2].decode()
        for path in (
            "/api/v1/notify/channels",
            "/api/v1/notify/silences",
            "/api/v1/notify/channels/{channel_id}/test",
        ):
            assert path in doc
        c.cli("channel", "remove", "--partner", "acme", ch_id)
        assert api(c, key, "GET", "/api/v1/notify/routes")[1]["routes"] == []
    finally:
        c.stop()


def test_bad_requests_are_refused_with_the_field_never_a_500(tmp_path: Path) -> None:
    c = _collector(tmp_path).start()
    try:
        key, _ = c.partner("acme")
        other, _ = c.partner("other")
        _, ch = api(
            c,
            key,
            "POST",
            "/api/v1/notify/channels",
            {"type": "webhook", "config": {"url": "http://127.0.0.1:9/"}},
        )
        cases = [
            ("POST", "/api/v1/notify/channels", {"type": "pigeon"}),
            ("POST", "/api/v1/notify/channels", {"type": "webhook", "config": []}),
            ("POST", "/api/v1/notify/channels", {"type": "webhook", "config": {"url": "ftp://x"}}),
            (
                "POST",
                "/api/v1/notify/channels",
                {"type": "webhook", "secret": "nope", "config": {"url": "http://x/"}},
            ),
            ("POST", "/api/v1/notify/channels", {"type": "smtp", "config": {"host": "x"}}),
            ("POST", "/api/v1/notify/channels", {"type": "apprise"}),
            (
                "POST",
                "/api/v1/notify/channels",
                {"type": "smtp", "config": {"host": "x", "to": "a", "from": "b", "port": "25"}},
            ),
            ("POST", "/api/v1/notify/channels", {"type": 5}),
            ("POST", "/api/v1/notify/routes", {"channel": ch["id"], "repeat_s": 1}),
            ("POST", "/api/v1/notify/routes", {"channel": ch["id"], "group_wait_s": -1}),
            ("POST", "/api/v1/notify/routes", {"channel": ch["id"], "digest_hour": 99}),
            ("POST", "/api/v1/notify/routes", {"channel": ch["id"], "kinds": [1]}),
            ("POST", "/api/v1/notify/routes", {"channel": ch["id"], "quiet_hours": "night"}),
            (
                "POST",
                "/api/v1/notify/routes",
                {"channel": ch["id"], "quiet_hours": {"from": "25:00", "until": "06:00"}},
            ),
            (
                "POST",
                "/api/v1/notify/routes",
                {
                    "channel": ch["id"],
                    "quiet_hours": {"from": "22:00", "until": "06:00", "timezone": "Mars/Olympus"},
                },
            ),
            ("POST", "/api/v1/notify/routes", {"channel": "ch_nope"}),
            (
                "POST",
                "/api/v1/notify/silences",
                {"scope": "galaxy", "value": "x", "duration_s": 60},
            ),
            ("POST", "/api/v1/notify/silences", {"scope": "site", "value": "x"}),
            ("POST", "/api/v1/notify/silences", {"scope": "site", "value": "x", "ends_at": 1}),
            (
                "POST",
                "/api/v1/notify/silences",
                {"scope": "server", "value": "srv_x", "duration_s": 60},
            ),
            ("PUT", "/api/v1/notify/servers/srv_nope/labels", {"site": "x"}),
            ("DELETE", "/api/v1/notify/routes/abc", None),
            ("DELETE", "/api/v1/notify/silences/99", None),
            ("POST", f"/api/v1/notify/channels/{ch['id']}/rotate-secret", {"overlap_s": "x"}),
        ]
        for method, path, body in cases:
            status, answer = api(c, key, method, path, body)
            assert status in (400, 404), (method, path, body, status, answer)
            assert answer["error"] in ("invalid_field", "not_found"), answer
        # Another partner's channel is not there for it.
        assert api(c, other, "POST", "/api/v1/notify/routes", {"channel": ch["id"]})[0] == 404
        assert api(c, other, "GET", f"/api/v1/notify/channels/{ch['id']}/deliveries")[0] == 404
        status, _, _ = http(
            "POST", c.url + "/api/v1/notify/routes", b"{nope", {"Authorization": f"Bearer {key}"}
        )
        assert status == 400
    finally:
        c.stop()


def test_the_notification_key_is_shared_through_a_key_file(tmp_path: Path) -> None:
    """``[notify] key_file`` names the key every collector machine is given: a missing one
    stops ``serve`` with one line; a machine with another key says at start that it opens
    none of the stored channel secrets; with the first machine's key it sends."""
    c = _collector(tmp_path).start()
    rx = WebhookReceiver()
    try:
        c.partner("acme")
        ch_id = c.last_line(
            "channel", "add", "--partner", "acme", "--type", "webhook", "--url", rx.url
        )
        c.stop()
        shared = tmp_path / "shared-notify.key"
        assert c.config is not None
        c.config.write_text(CONFIG + f'key_file = "{shared}"\n')
        serve = [str(BIN / "vigil-collector"), "serve", "--data", str(c.data_dir)]
        serve += ["--config", str(c.config), "--listen", "127.0.0.1:0"]
        out = subprocess.run(serve, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "[notify] key_file" in out.stderr, out.stderr
        assert "does not exist" in out.stderr and "Traceback" not in out.stderr
        refused = c.cli("notify", "test", "--channel", ch_id, check=False)
        assert "does not exist" in refused and "Traceback" not in refused

        shared.write_bytes(os.urandom(32))
        shared.chmod(0o600)
        c.start()
        wait_until(lambda: "opens none of the channel secrets" in c.log(), 30, what="the warning")
        assert "does not open" in c.cli("notify", "test", "--channel", ch_id, check=False)
        assert rx.hits == []
        c.stop()

        shared.write_bytes((c.data_dir / "notify.key").read_bytes())
        assert c.log_path is not None
        warned = "opens none of the channel secrets"
        log_before = c.log_path.read_text().count(warned)
        c.start()
        assert "ok" in c.cli("notify", "test", "--channel", ch_id)
        wait_until(lambda: rx.hits, 30, what="the test message")
        assert c.log_path.read_text().count(warned) == log_before == 1
    finally:
        c.stop()
        rx.close()

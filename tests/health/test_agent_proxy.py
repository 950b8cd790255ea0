"""``[collector] proxy``: enrollment, reports and doctor reach the collector through an
HTTP proxy (a small forward/CONNECT proxy on 127.0.0.1 here), relayed as they are to a
plain ``http://`` collector and through a CONNECT tunnel to an ``https://`` one, while the
cameras are probed directly, never through it."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cameras import simulated_cameras
from harness.forward_proxy import RelayProxy
from harness.net import wait_until
from harness.processes import Agent, Collector
from harness.tls import TlsFront, self_signed


@pytest.fixture
def proxy() -> Iterator[RelayProxy]:
    p = RelayProxy()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """One simulated ONVIF camera: (the agent's configuration table for it, its port)."""
    with simulated_cameras(1, tmp_path) as fleet:
        yield fleet.table, fleet.cameras[0]["port"]


def _reports_and_a_probe(agent: Agent) -> None:
    """Wait for two reports sent and one camera probed; the camera answered."""
    wait_until(lambda: (agent.polled_status().get("last_report_seq") or 0) >= 2, 60, what="reports")
    wait_until(lambda: agent.polled_status()["cameras"].get("list"), 60, what="a camera probe")
    assert agent.status()["cameras"]["list"][0]["verdict"] == "ok"


def test_collector_link_goes_through_the_proxy_cameras_do_not(
    collector: Collector, make_agent, proxy: RelayProxy, camera: tuple[str, int]
) -> None:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    table, camera_port = camera
    agent = make_agent(extra_config=f'\n[collector]\nproxy = "{proxy.url}"\n\n' + table)
    agent.enroll(collector.url, token)
    collector_target = f"127.0.0.1:{collector.port}"
    assert proxy.targets == [collector_target], "enrollment went through the proxy"
    agent.start()
    _reports_and_a_probe(agent)
    doctor = agent.cmd("doctor", check=False).stdout
    assert f"answers through the proxy {proxy.url}" in doctor, doctor
    assert set(proxy.targets) == {collector_target}
    assert not any(t.endswith(f":{camera_port}") for t in proxy.targets)


def test_an_https_collector_is_reached_through_a_connect_tunnel(
    collector: Collector,
    make_agent,
    proxy: RelayProxy,
    camera: tuple[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context, ca_file = self_signed(tmp_path)
    front = TlsFront(collector.port, context).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the agent trusts the front's certificate
    try:
        key, token = collector.partner("acme")
        collector.cli("server", "interval", "--partner", "acme", "1s")
        table, camera_port = camera
        agent = make_agent(extra_config=f'\n[collector]\nproxy = "{proxy.url}"\n\n' + table)
        # As a process: it reads SSL_CERT_FILE when it starts, as an installed agent does.
        agent.cmd("enroll", "--collector", front.url, "--token", token)
        server_id = json.loads((agent.state_dir / "identity.json").read_text())["server_id"]
        agent.start()
        _reports_and_a_probe(agent)
        status, server = collector.api(key, f"/api/v1/servers/{server_id}")
        assert status == 200 and server["reports_received"] >= 2
        doctor = agent.cmd("doctor", check=False).stdout
        assert f"answers through the proxy {proxy.url}" in doctor, doctor
    finally:
        front.stop()
    assert set(proxy.request_lines) == {f"CONNECT 127.0.0.1:{front.port} HTTP/1.1"}
    assert front.peer_ports and set(front.peer_ports) <= set(proxy.source_ports), (
        "every TLS connection the collector's front took came through a tunnel"
    )
    assert not any(t.endswith(f":{camera_port}") for t in proxy.targets)


def test_a_proxy_that_is_down_is_named(collector: Collector, make_agent) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    collector.cli("partner", "add", "acme")
    token = collector.last_line("token", "create", "--partner", "acme")
    agent = make_agent(extra_config=f'\n[collector]\nproxy = "http://127.0.0.1:{dead}"\n')
    out = agent.cmd("enroll", "--collector", collector.url, "--token", token, check=False)
    assert out.returncode != 0
    assert f"127.0.0.1:{dead}" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_proxy_that_is_not_a_url_is_refused(make_agent) -> None:
    agent = make_agent(extra_config='\n[collector]\nproxy = "proxy:3128"\n')
    out = agent.cmd("doctor", check=False)
    assert out.returncode == 1
    assert "collector.proxy: expected a proxy URL" in out.stdout + out.stderr

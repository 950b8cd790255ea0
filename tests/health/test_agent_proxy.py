"""``[collector] proxy``: enrollment, reports and doctor reach the collector through an
HTTP proxy (a small forward/CONNECT proxy on 127.0.0.1 here), while the cameras are
probed directly, never through it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.net import wait_until
from harness.processes import BIN, Collector


class RelayProxy:
    """Forward proxy: ``CONNECT host:port`` tunnels, absolute-form requests are relayed as
    they are (aiohttp's server accepts them). Records each target it was asked for."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.targets: list[str] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            method, target = head.split(b" ", 2)[:2]
            if method == b"CONNECT":
                host, _, port = target.decode().rpartition(":")
                rest = head.split(b"\r\n\r\n", 1)[1]
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                hostport = target.decode().split("/")[2]
                host, _, port = hostport.rpartition(":")
                rest = head
            self.targets.append(f"{host}:{port}")
            with socket.create_connection((host, int(port)), timeout=30) as upstream:
                if rest:
                    upstream.sendall(rest)
                self._relay(conn, upstream)

    @staticmethod
    def _relay(a: socket.socket, b: socket.socket) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(b, a), daemon=True)
        t.start()
        pump(a, b)
        t.join(60)

    def close(self) -> None:
        self._stop = True
        self.server.close()


@pytest.fixture
def proxy() -> Iterator[RelayProxy]:
    p = RelayProxy()
    try:
        yield p
    finally:
        p.close()


def test_collector_link_goes_through_the_proxy_cameras_do_not(
    collector: Collector, make_agent, proxy: RelayProxy, tmp_path: Path
) -> None:
    collector.cli("partner", "add", "acme")
    collector.cli("server", "interval", "--partner", "acme", "1s")
    token = collector.last_line("token", "create", "--partner", "acme")
    table = tmp_path / "cameras.toml"
    sim = subprocess.Popen(
        [
            str(BIN / "vigil-sim"),
            "cameras",
            "--count",
            "1",
            "--json",
            "--write-agent-config",
            str(table),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        camera_port = json.loads(sim.stdout.readline())["cameras"][0]["port"]
        agent = make_agent(
            extra_config=f'\n[collector]\nproxy = "{proxy.url}"\n\n' + table.read_text()
        )
        agent.enroll(collector.url, token)
        collector_target = f"127.0.0.1:{collector.port}"
        assert proxy.targets == [collector_target], "enrollment went through the proxy"
        agent.start()
        wait_until(lambda: (agent.status().get("last_report_seq") or 0) >= 2, 60, what="reports")
        wait_until(lambda: agent.status()["cameras"].get("list"), 60, what="a camera probe")
        assert agent.status()["cameras"]["list"][0]["verdict"] == "ok"
        doctor = agent.cmd("doctor", check=False).stdout
        assert f"answers through the proxy {proxy.url}" in doctor, doctor
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(15)
    assert set(proxy.targets) == {collector_target}
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

"""Slow and oversized clients against a real collector: cut off, never buffered.

The collector runs with a short read timeout (``[collector] read_timeout_s = 2``) so the
attacks end quickly; a real agent reports every second throughout.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator

import psutil
import pytest

from harness.database import PrivatePostgres, collector_sql, own_database_env
from harness.net import wait_until
from harness.processes import Agent, Collector

READ_TIMEOUT_S = 2
ENROLL = "/api/v1/agent/enroll"


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PrivatePostgres | None
) -> Iterator[tuple[Collector, Agent, str]]:
    """A collector with a 2 s read timeout and an agent reporting every second, shared by
    the module's tests: each opens its own connections and closes them, and none changes
    what the collector stores beyond the agent's reports."""
    root = tmp_path_factory.mktemp("guarded")
    config = root / "collector.toml"
    config.write_text(f"[collector]\nread_timeout_s = {READ_TIMEOUT_S}\nreport_interval_s = 1\n")
    env = own_database_env(postgres_server)  # on PostgreSQL, the module's own database
    collector = Collector(root / "collector", config=config, env=env).start()
    agent = Agent(root / "agent")
    try:
        collector.cli("partner", "add", "acme")
        token = collector.last_line("token", "create", "--partner", "acme")
        server_id = agent.enroll(collector.url, token)
        agent.start()
        wait_until(lambda: reports_stored(collector, server_id) >= 1, 30, what="first report")
        yield collector, agent, server_id
    finally:
        agent.kill(signal.SIGKILL)
        collector.kill(signal.SIGTERM)


def reports_stored(collector: Collector, server_id: str) -> int:
    with collector_sql(collector.data_dir, collector.env) as db:
        row = db.execute("SELECT COUNT(*) FROM reports WHERE server_id = ?", (server_id,))
        return int(row.fetchone()[0])


def connect(collector: Collector) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", collector.port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    return s


def headers(path: str, length: int, ctype: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def send_quietly(s: socket.socket, data: bytes) -> bool:
    """Send; False once the collector has closed the connection."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


def answer_or_close(s: socket.socket) -> bytes:
    """What the collector sent before closing (b"" if it just closed); raises on timeout."""
    s.settimeout(0.2)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except TimeoutError:
        if not got:
            raise
    except OSError:
        pass
    return got


def closed_by_collector(s: socket.socket, answers: list[bytes] | None = None) -> bool:
    try:
        got = answer_or_close(s)
    except TimeoutError:
        return False
    if answers is not None:
        answers.append(got)
    return True


def test_sixty_half_sent_bodies_do_not_grow_memory_and_the_agent_keeps_reporting(
    guarded: tuple[Collector, Agent, str],
) -> None:
    collector, _agent, server_id = guarded
    proc = psutil.Process(collector.proc.pid)  # type: ignore[union-attr]
    before = proc.memory_info().rss
    reports_before = reports_stored(collector, server_id)
    paths = (ENROLL, "/api/v1/agent/session", "/login") * 20
    socks = []
    chunk = b"x" * (2 * 1024 * 1024)
    # Thirty announce 8 MiB and send as much as the collector takes at once; thirty stay
    # under the small cap and send theirs a byte a second.
    for i, path in enumerate(paths):
        s = connect(collector)
        socks.append(s)
        big = i % 2 == 0
        send_quietly(s, headers(path, 8 * 1024 * 1024 if big else 4000))
        if big:
            s.settimeout(0.05)
            try:
                s.sendall(chunk)
            except OSError:
                pass
    peak = proc.memory_info().rss
    for _ in range(3):
        for s in socks:
            s.settimeout(0.05)
            send_quietly(s, b"x")
        peak = max(peak, proc.memory_info().rss)
        time.sleep(1)
    growth = peak - before
    assert growth < 16 * 1024 * 1024, f"collector grew by {growth / 2**20:.0f} MiB"
    wait_until(  # meanwhile, while the attack is still under way
        lambda: reports_stored(collector, server_id) >= reports_before + 2,
        30,
        what="the agent's reports during the attack",
    )
    for s in socks:
        s.close()
    assert collector.proc.poll() is None  # type: ignore[union-attr]


@pytest.mark.parametrize("path", [ENROLL, "/api/v1/agent/session", "/login", "/api/v1/servers"])
def test_a_body_sent_a_byte_at_a_time_is_cut_off(
    guarded: tuple[Collector, Agent, str], path: str
) -> None:
    collector, _agent, _server_id = guarded
    socks = [connect(collector) for _ in range(5)]
    for s in socks:
        s.sendall(headers(path, 2000, "application/x-www-form-urlencoded"))
    cut = set()
    answers: list[bytes] = []
    deadline = time.monotonic() + 10 * READ_TIMEOUT_S
    while len(cut) < len(socks) and time.monotonic() < deadline:
        for i, s in enumerate(socks):
            if i not in cut and (not send_quietly(s, b"a") or closed_by_collector(s, answers)):
                cut.add(i)
        time.sleep(0.3)
    assert len(cut) == len(socks), "a client sending a byte at a time kept its connection"
    expected = b"HTTP/1.1 401" if path == "/api/v1/servers" else b"HTTP/1.1 408"
    assert all(a.startswith(expected) for a in answers if a), answers
    for s in socks:
        s.close()
    assert collector.api("nokey", "/api/v1/servers")[0] == 401  # still answering


def test_headers_sent_a_byte_at_a_time_are_cut_off(guarded: tuple[Collector, Agent, str]) -> None:
    collector, _agent, _server_id = guarded
    s = connect(collector)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    deadline = time.monotonic() + 10 * READ_TIMEOUT_S
    closed = False
    while not closed and time.monotonic() < deadline:
        closed = not send_quietly(s, b"X") or closed_by_collector(s)
        time.sleep(0.3)
    s.close()
    assert closed, "a client sending its headers a byte at a time kept its connection"


@pytest.mark.parametrize("path", [ENROLL, "/api/v1/agent/session", "/login"])
def test_open_routes_refuse_a_large_body_before_reading_it(
    guarded: tuple[Collector, Agent, str], path: str
) -> None:
    collector, _agent, _server_id = guarded
    s = connect(collector)
    s.sendall(headers(path, 1024 * 1024))  # the headers alone: the answer must not wait
    s.settimeout(READ_TIMEOUT_S / 2)
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"too_large" in answer


@pytest.mark.parametrize("path", [ENROLL, "/login"])
def test_open_routes_cap_a_chunked_body(guarded: tuple[Collector, Agent, str], path: str) -> None:
    collector, _agent, _server_id = guarded
    s = connect(collector)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
    )
    piece = b"a" * 4096
    for _ in range(64):
        if not send_quietly(s, b"%x\r\n%s\r\n" % (len(piece), piece)):
            break
    send_quietly(s, b"0\r\n\r\n")
    s.settimeout(10)
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

"""The contract import reads the whole file before it plans anything: a body that comes
in pieces is imported whole, a truncated upload (Content-Length larger than what arrives,
connection closed) changes nothing. Raw sockets against a real collector process."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from harness.net import http
from harness.processes import Collector

TODAY = time.strftime("%Y-%m-%d")
HEADER = "contract_id,customer,partner,plan,licence_ids,start\n"


def rows(*ids: str) -> str:
    return HEADER + "".join(f"{i},Museum,acme,maintenance-support,L-{i},{TODAY}\n" for i in ids)


def api(collector: Collector, key: str, path: str) -> tuple[int, Any]:
    status, _, body = http("GET", collector.url + path, headers={"Authorization": f"Bearer {key}"})
    return status, json.loads(body) if body else None


def import_ids(collector: Collector, key: str) -> list[str]:
    return [c["id"] for c in api(collector, key, "/api/v1/contracts")[1]["contracts"]]


def raw_post(collector: Collector, key: str, pieces: list[bytes], declared: int) -> bytes:
    """POST the import in ``pieces`` (a short pause between them, so the collector reads
    each one separately), declaring ``declared`` bytes; return what came back."""
    head = (
        f"POST /api/v1/contracts/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", collector.port), timeout=30) as s:
        s.sendall(head)
        for piece in pieces:
            time.sleep(0.3)
            s.sendall(piece)
        time.sleep(0.3)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return out


def test_a_truncated_upload_changes_nothing(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    body = rows("A-1", "A-2", "A-3").encode()
    status, _, _ = http(
        "POST",
        collector.url + "/api/v1/contracts/import",
        body,
        {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
    )
    assert status == 200 and import_ids(collector, key) == ["A-1", "A-2", "A-3"]

    # The next export lists; only its first line arrives before the connection
    # closes. Planned from that part, A-2 and A-3 would be removed.
    full = rows("A-1", "A-4").encode()
    cut = full.index(b"\n", len(HEADER) + 5) + 1
    raw_post(collector, key, [full[:cut]], declared=len(full) + 100)
    assert import_ids(collector, key) == ["A-1", "A-2", "A-3"]
    for cid in ("A-1", "A-2", "A-3"):
        assert len(api(collector, key, f"/api/v1/contracts/{cid}")[1]["history"]) == 1
    # The collector is still serving.
    assert api(collector, key, "/api/v1/contracts")[0] == 200


def test_a_body_in_pieces_is_imported_whole(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    full = rows("A-1", "A-2", "A-3").encode()
    third = len(full) // 3
    out = raw_post(
        collector, key, [full[:third], full[third : 2 * third], full[2 * third :]], len(full)
    )
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert import_ids(collector, key) == ["A-1", "A-2", "A-3"]


def test_a_body_shorter_than_declared_is_refused_with_a_4xx(collector: Collector) -> None:
    key, _ = collector.partner("acme")
    body = rows("A-1").encode()
    # Declared longer, the write side closed: the collector sees the end of the stream.
    out = raw_post(collector, key, [body], declared=len(body) + 10)
    if out:  # the connection may be gone before an answer can be written
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        assert b"incomplete_body" in out
    assert import_ids(collector, key) == []

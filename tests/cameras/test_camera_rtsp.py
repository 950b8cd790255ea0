"""RTSP DESCRIBE client: Digest, and credentials only for the camera's own address."""

from __future__ import annotations

import asyncio

from agent.cameras import rtsp
from agent.cameras.probe import _same_host
from sim.fleet import SimulatedFleet


def test_describe_with_digest_against_the_simulator():
    async def go():
        async with SimulatedFleet(1) as fleet:
            cam = fleet.cameras[0]
            url = f"{cam.rtsp_base}/Profile_1"
            good = await rtsp.describe(url, cam.username, cam.password)
            bad = await rtsp.describe(url, cam.username, "wrong")
            anonymous = await rtsp.describe(url, cam.username, cam.password, send_auth=False)
            in_url = await rtsp.describe(
                url.replace("rtsp://", f"rtsp://{cam.username}:{cam.password}@"), "x", "y"
            )
            return good, bad, anonymous, in_url, cam.requests["RTSP DESCRIBE"]

    good, bad, anonymous, in_url, count = asyncio.run(go())
    assert good.ok and good.sdp.startswith("v=0") and "200 with SDP" in good.summary()
    assert bad.status == 401 and not bad.ok
    assert anonymous.status == 401
    assert in_url.ok
    assert count == 7  # 401 + answer, 401 + wrong answer, one anonymous, 401 + answer


def test_no_credentials_for_a_host_the_camera_names():
    seen: list[bytes] = []

    async def go():
        async def handle(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head)
            writer.write(
                b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm="x"\r\n'
                b"Content-Length: 0\r\n\r\n"
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await rtsp.describe(f"rtsp://127.0.0.1:{port}/s", "u", "p", send_auth=False)
        finally:
            server.close()

    result = asyncio.run(go())
    assert result.status == 401
    assert len(seen) == 1 and b"Authorization" not in seen[0]
    assert _same_host("rtsp://10.0.0.7:554/s", "10.0.0.7")
    assert _same_host("http://[fe80::1]:80/x", "fe80::1")
    assert not _same_host("rtsp://evil.example:554/s", "10.0.0.7")
    assert not _same_host("rtsp://10.0.0.7@10.0.0.8/s", "10.0.0.7")


def test_authorization_answers_basic_and_digest():
    basic = rtsp.authorization('Basic realm="cam"', "DESCRIBE", "rtsp://h/s", "u", "p")
    assert basic == "Basic dTpw"
    digest = rtsp.authorization(
        'Digest realm="cam", nonce="abc"', "DESCRIBE", "rtsp://h/s", "u", "p"
    )
    assert digest.startswith("Digest ") and 'nonce="abc"' in digest and "qop" not in digest
    assert rtsp.authorization("Negotiate x", "DESCRIBE", "rtsp://h/s", "u", "p") is None

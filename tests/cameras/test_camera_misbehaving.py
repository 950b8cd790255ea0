"""Whatever a device on the camera's port does, the probe ends in a verdict, never an
exception. Each case is a raw TCP server on 127.0.0.1 answering every request its way."""

from __future__ import annotations

import asyncio

import pytest

from agent.cameras.probe import Prober, Target
from agent.cameras.verdict import judge


def _http(status: str, body: bytes, ctype: str = "application/soap+xml") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode() + body


BAD_TIME = (
    b'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    b'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">'
    b"<s:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:UTCDateTime>"
    b"<tt:Time><tt:Hour>99</tt:Hour><tt:Minute>x</tt:Minute><tt:Second>0</tt:Second></tt:Time>"
    b"<tt:Date><tt:Year>abc</tt:Year><tt:Month>13</tt:Month><tt:Day>0</tt:Day></tt:Date>"
    b"</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    b"</s:Body></s:Envelope>"
)

CASES = {
    # name: (what the server sends after each request (None = close), expected verdict)
    "closes_at_once": (None, "error"),
    "empty_200": (_http("200 OK", b""), "error"),
    "http_401_html": (_http("401 Unauthorized", b"<html>login</html>", "text/html"), "auth_failed"),
    "http_500_html": (
        _http("500 Internal Server Error", b"<html>oops</html>", "text/html"),
        "error",
    ),
    "not_http": (b"SSH-2.0-OpenSSH_9.2\r\n", "error"),
    "soap_nonsense_time": (_http("200 OK", BAD_TIME), "error"),
    "html_200": (_http("200 OK", b"<html><body>camera web ui</body></html>", "text/html"), "error"),
    "headers_then_silence": (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<s:", "unreachable"),
}


async def _serve(reply: bytes | None):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_misbehaving_device_gets_a_verdict(case):
    reply, expected = CASES[case]

    async def go():
        server = await _serve(reply)
        port = server.sockets[0].getsockname()[1]
        prober = Prober(timeout_s=1.0, snapshot=True)
        try:
            result = await prober.probe(Target("x", "127.0.0.1", port, "admin", "pw"))
        finally:
            await prober.close()
            server.close()
        return result

    result = asyncio.run(go())
    verdict, reasons = judge(result, 5.0)
    assert verdict == expected, (result.outcome, result.failure, result.steps)
    assert reasons and all(reasons)

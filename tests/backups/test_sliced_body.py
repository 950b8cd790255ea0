"""A large request body (a backup chunk) goes to the connection a slice at a time
(``agent.client._SlicedBody``): the server on 127.0.0.1 receives every byte, once, with
its length declared, not chunked."""

from __future__ import annotations

import asyncio
import os

import aiohttp
from aiohttp import web

from agent.client import SEND_SLICE, _SlicedBody


async def _send(body: bytearray | memoryview) -> tuple[bytes, dict[str, str]]:
    got: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        got["body"] = await request.read()
        got["headers"] = dict(request.headers)
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_put("/chunk", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.put(
                f"http://127.0.0.1:{port}/chunk",
                data=_SlicedBody(body),
                headers={"Content-Type": "application/octet-stream"},
            ) as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
    return got["body"], got["headers"]  # type: ignore[return-value]


def test_every_byte_arrives_once_with_its_length() -> None:
    data = bytearray(os.urandom(5 * SEND_SLICE + 12345))
    body, headers = asyncio.run(_send(memoryview(data)[7:]))
    assert body == bytes(data[7:])
    assert headers["Content-Length"] == str(len(data) - 7)
    assert "Transfer-Encoding" not in headers


def test_a_body_of_whole_slices_and_one_shorter_than_a_slice() -> None:
    for size in (SEND_SLICE, 2 * SEND_SLICE, 100):
        data = bytearray(os.urandom(size))
        body, headers = asyncio.run(_send(data))
        assert body == bytes(data)
        assert headers["Content-Length"] == str(size)

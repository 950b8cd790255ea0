"""The sender against a collector that says 'later': Retry-After, backoff, refusals."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.client import CollectorClient
from agent.sender import Sender, backoff
from agent.spool import Spool
from protocol.messages import AgentSettings, ReportAck, SessionResponse, encode


class FakeCollector:
    """Answers sessions; answers reports from a script of statuses."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        self.script = script
        self.report_times: list[float] = []
        self.received: list[int] = []
        self.want = 0
        self.enough = asyncio.Event()

    async def session(self, request: web.Request) -> web.Response:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pub = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        import base64

        resp = SessionResponse(
            protocol=1,
            session_id="ses_1",
            ephemeral_key=base64.b64encode(pub).decode(),
            expires_at=time.time() + 3600,
            server_time=time.time(),
        )
        return web.Response(status=201, body=encode(resp), content_type="application/json")

    async def reports(self, request: web.Request) -> web.Response:
        self.report_times.append(time.monotonic())
        body = json.loads(await request.read())
        status, headers = self.script.pop(0) if self.script else (200, {})
        if status == 200:
            ids = [r["report_id"] for r in body["reports"]]
            self.received += [r["seq"] for r in body["reports"]]
            if len(self.received) >= self.want:
                self.enough.set()
            ack = ReportAck(accepted=ids, settings=AgentSettings(report_interval_s=30))
            return web.Response(body=encode(ack), content_type="application/json")
        err = {"error": "busy" if status != 400 else "invalid_field", "message": "scripted"}
        return web.json_response(err, status=status, headers=headers)


async def run_sender(
    tmp_path: Path, fake: FakeCollector, reports: int, until: int
) -> tuple[Sender, list]:
    app = web.Application()
    app.router.add_post("/api/v1/agent/session", fake.session)
    app.router.add_post("/api/v1/agent/reports", fake.reports)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    spool = Spool(tmp_path / "spool", 1 << 20)
    for seq in range(1, reports + 1):
        spool.append(seq, json.dumps({"report_id": f"r{seq}", "seq": seq}).encode())
    settings: list[AgentSettings] = []
    client = CollectorClient(f"http://127.0.0.1:{port}", "srv_x", Ed25519PrivateKey.generate())
    sender = Sender(
        spool, client, retry_max_s=5, on_settings=settings.append, on_event=lambda *_: None
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    fake.want = until
    await asyncio.wait_for(fake.enough.wait(), 30)
    stop.set()
    await task
    await client.close()
    await runner.cleanup()
    return sender, settings


def test_retry_after_is_honoured_and_nothing_is_lost(tmp_path: Path) -> None:
    fake = FakeCollector([(503, {"Retry-After": "1"}), (429, {"Retry-After": "1"})])
    sender, settings = asyncio.run(run_sender(tmp_path, fake, 3, 3))
    assert fake.received == [1, 2, 3]
    gaps = [b - a for a, b in zip(fake.report_times, fake.report_times[1:], strict=False)]
    assert gaps[0] >= 0.9 and gaps[1] >= 0.9, gaps  # waited as told, not hammering
    assert len(sender.spool) == 0
    assert settings[-1].report_interval_s == 30


def test_a_refused_report_is_set_aside_and_the_rest_go_through(tmp_path: Path) -> None:
    fake = FakeCollector([(400, {}), (400, {})])  # the batch, then report 1 alone
    sender, _ = asyncio.run(run_sender(tmp_path, fake, 3, 2))
    assert fake.received == [2, 3]
    assert (tmp_path / "spool" / "rejected" / f"{1:012d}.json").exists()
    assert len(sender.spool) == 0


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    import random

    rng = random.Random(7)
    delays = [backoff(n, 60, rng) for n in range(1, 10)]
    assert all(
        0.5 * min(60, 2**n) <= d <= min(60, 2**n) for n, d in zip(range(1, 10), delays, strict=True)
    )
    assert max(delays) <= 60

"""Back-pressure on report ingest: a collector holding as many report batches as it takes
answers the next one 429 ``ingest_busy`` with ``Retry-After`` (never 500) and stores
nothing of it; the agent's sender waits at least that long (with jitter) and then
delivers every report of its spool exactly once.

The collector runs in this process (``harness.app``) so a test can hold its commits
while the gate is full: the same state a slow disk or a crowd of agents puts it in,
without depending on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from agent.client import CollectorClient, Response
from agent.sender import RETRY_AFTER_JITTER, Sender, after_retry_after
from agent.spool import Spool
from collector.health.ingest_gate import INGEST_GATE
from collector.http.appkeys import DB
from harness.app import app_client
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.net import wait_until
from harness.processes import Collector
from harness.signed import batch, report, signed_headers
from protocol import routes
from tests.faults.test_resilience import stored_reports

RETRY_AFTER_S = 2


def config(tmp_path: Path, max_pending: int) -> Path:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        f"[collector]\ningest_max_pending = {max_pending}\ningest_retry_after_s = {RETRY_AFTER_S}\n"
    )
    return cfg


@dataclass
class Held:
    """The app's database writes, held while ``release`` is not set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    def install(self, app: Any) -> None:
        db = app[DB]
        real = db.write

        async def write(fn: Callable[[Any], Any]) -> Any:
            await self.release.wait()
            return await real(fn)

        db.write = write


@asynccontextmanager
async def site(tmp_path: Path, max_pending: int) -> AsyncIterator[tuple[TestClient, str, str]]:
    """The collector app with a bound of ``max_pending`` batches: (client, URL, token)."""
    cfg = config(tmp_path, max_pending)
    offline = Collector(tmp_path / "data", config=cfg)  # its CLI, before the app runs
    _, token = offline.partner("acme")
    async with app_client(offline.data_dir, cfg) as client:
        yield client, str(client.make_url("")).rstrip("/"), token


async def enrolled(url: str, token: str, hostname: str) -> tuple[EnrolledAgent, tuple[str, bytes]]:
    """An agent enrolled on the app, with its session open (both are writes: before any
    write is held)."""
    agent = await asyncio.to_thread(enroll_agent, url, token, hostname)
    client = agent.client()
    try:
        await client.open_session()
        assert client._session is not None
        return agent, (client._session.id, client._session.key)
    finally:
        await client.close()


async def post_report(
    client: TestClient, session: tuple[str, bytes], seq: int
) -> tuple[int, str | None, dict[str, Any], str]:
    rep = report(seq)
    body = batch(rep)
    r = await client.post(
        routes.REPORTS, data=body, headers=signed_headers(session, "POST", routes.REPORTS, body)
    )
    return r.status, r.headers.get("Retry-After"), await r.json(), str(rep["report_id"])


async def gate_holds(client: TestClient, n: int) -> None:
    gate = client.app[INGEST_GATE]
    await asyncio.to_thread(wait_until, lambda: gate.in_flight >= n, 30, 0.01, "a full gate")


def stored(tmp_path: Path, server_id: str) -> list[tuple[int, str]]:
    return stored_reports(Collector(tmp_path / "data"), server_id)


def test_a_full_ingest_answers_429_with_retry_after_and_stores_nothing(tmp_path: Path) -> None:
    async def go() -> tuple[list[Any], list[Any], list[Any], str, str]:
        async with site(tmp_path, max_pending=2) as (client, url, token):
            agent, session = await enrolled(url, token, "rec-01")
            held = Held()
            held.install(client.app)
            first = [asyncio.create_task(post_report(client, session, s)) for s in (1, 2)]
            await gate_holds(client, 2)
            refused = [await post_report(client, session, s) for s in range(3, 8)]
            held.release.set()
            accepted = [await t for t in first]
            # Nothing of a refused batch was stored: sent again, each is accepted now.
            again = []
            for status, _, _, rid in refused:
                assert status == 429
                body = batch(report(0, rid))
                r = await client.post(
                    routes.REPORTS,
                    data=body,
                    headers=signed_headers(session, "POST", routes.REPORTS, body),
                )
                again.append((r.status, await r.json()))
            metrics = await (await client.get("/metrics")).text()
            return accepted, refused, again, metrics, agent.server_id

    accepted, refused, again, metrics, server_id = asyncio.run(go())
    assert [a[0] for a in accepted] == [200, 200]
    for status, retry_after, doc, _ in refused:
        assert status == 429, (status, doc)
        assert retry_after == str(RETRY_AFTER_S)
        assert doc["error"] == "ingest_busy" and "spool" in doc["message"]
    assert 'vigil_requests_rejected_total{reason="ingest_busy"} 5.0' in metrics
    assert "vigil_ingest_batches_in_flight 0.0" in metrics  # every place given back
    assert all(status == 200 and doc["accepted"] for status, doc in again), again
    ids = [rid for _, rid in stored(tmp_path, server_id)]
    assert len(ids) == len(set(ids)) == 7


@dataclass
class NotingClient(CollectorClient):
    """The agent's own client, noting when each report request went out and its answer."""

    sent: list[tuple[float, int]] = field(default_factory=list)
    answered: float = 0.0
    """When the last report request was answered."""

    async def request(self, method: str, path: str, *args: Any, **kw: Any) -> Response:
        began = time.monotonic()
        resp = await super().request(method, path, *args, **kw)
        if path == routes.REPORTS:
            self.sent.append((began, resp.status))
            self.answered = time.monotonic()
        return resp


def test_the_sender_waits_out_retry_after_and_delivers_each_report_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    for seq in range(1, 6):
        spool.append(seq, json.dumps(report(seq, f"r{seq}")).encode())

    async def go() -> tuple[list[tuple[float, int]], float, str, int]:
        async with site(tmp_path, max_pending=1) as (client, url, token):
            _, other_session = await enrolled(url, token, "rec-02")
            agent, _ = await enrolled(url, token, "rec-01")
            noting = NotingClient(url, agent.server_id, agent.client().signing_key)
            await noting.open_session()  # a write: before the hold
            held = Held()
            held.install(client.app)
            holder = asyncio.create_task(post_report(client, other_session, 1))
            await gate_holds(client, 1)
            sender = Sender(
                spool, noting, retry_max_s=5, on_settings=lambda _: None, on_event=lambda *_: None
            )
            stop = asyncio.Event()
            running = asyncio.create_task(sender.run(stop))
            await asyncio.to_thread(wait_until, lambda: noting.sent, 30, 0.01, "a report sent")
            refused_answered = noting.answered
            held.release.set()
            assert (await holder)[0] == 200
            await asyncio.to_thread(wait_until, lambda: not len(spool), 30, 0.05, "an empty spool")
            stop.set()
            await running
            await noting.close()
            return noting.sent, refused_answered, agent.server_id, len(spool)

    sent, refused_answered, server_id, left = asyncio.run(go())
    assert sent[0][1] == 429, sent
    assert sent[1][1] == 200, sent
    # Not sooner than the collector asked (the jitter only adds to it).
    assert sent[1][0] - refused_answered >= RETRY_AFTER_S, sent
    assert left == 0
    assert stored(tmp_path, server_id) == [(s, f"r{s}") for s in range(1, 6)]


def test_retry_after_gets_jitter_on_top_never_less() -> None:
    rng = random.Random(11)
    waits = [after_retry_after(10, rng) for _ in range(200)]
    assert all(10 <= w <= 10 * (1 + RETRY_AFTER_JITTER) for w in waits)
    assert max(waits) - min(waits) > 2  # spread: a refused crowd does not return in step
    assert after_retry_after(0, rng) >= 0.1
    assert after_retry_after(10**9, rng) <= 3600

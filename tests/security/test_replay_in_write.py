"""A report batch's nonce is taken in the batch's own write: one commit per report, and
replay protection as strong as a claim of its own (the same request twice at once is
stored once; a request refused before its write is a replay afterwards).

The collector runs in this process (``harness.app``) so a test can count its commits.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from collector.http.appkeys import DB
from harness.app import app_client
from harness.enrolled import enroll_agent
from harness.processes import Collector
from harness.signed import batch, report, signed_headers
from protocol import routes
from tests.faults.test_resilience import stored_reports


async def _session(client: TestClient, token: str) -> tuple[str, tuple[str, bytes]]:
    url = str(client.make_url("")).rstrip("/")
    agent = await asyncio.to_thread(enroll_agent, url, token, "rec-01")
    own = agent.client()
    try:
        await own.open_session()
        assert own._session is not None
        return agent.server_id, (own._session.id, own._session.key)
    finally:
        await own.close()


async def _post(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    r = await client.post(routes.REPORTS, data=body, headers=headers)
    return r.status, json.loads(await r.read())


def _signed(session: tuple[str, bytes], body: bytes) -> dict[str, str]:
    return signed_headers(session, "POST", routes.REPORTS, body)


def test_a_report_costs_one_commit_and_its_replay_keeps_nothing(tmp_path: Path) -> None:
    offline = Collector(tmp_path / "data")
    _, token = offline.partner("acme")

    async def go() -> tuple[int, list[tuple[int, Any]], tuple[int, Any], str]:
        async with app_client(offline.data_dir) as client:
            server_id, session = await _session(client, token)
            db = client.app[DB]
            before = db.commits
            answers = []
            for seq in range(1, 6):
                body = batch(report(seq))
                last = (body, _signed(session, body))
                answers.append(await _post(client, *last))
            commits = db.commits - before
            replayed = await _post(client, *last)
            return commits, answers, replayed, server_id

    commits, answers, replayed, server_id = asyncio.run(go())
    assert [status for status, _ in answers] == [200] * 5, answers
    assert commits == 5, f"{commits} commits for 5 reports sent one after the other"
    assert replayed[0] == 401 and replayed[1]["error"] == "replay", replayed
    assert [seq for seq, _ in stored_reports(offline, server_id)] == [1, 2, 3, 4, 5]


def test_the_same_request_at_once_is_stored_once(tmp_path: Path) -> None:
    """Sent four times at once, the copies meet in one group commit or in several: one
    is stored and acknowledged, every other is refused as a replay."""
    offline = Collector(tmp_path / "data")
    _, token = offline.partner("acme")

    async def go() -> tuple[list[tuple[int, Any]], str]:
        async with app_client(offline.data_dir) as client:
            server_id, session = await _session(client, token)
            body = batch(report(1, "once"))
            headers = _signed(session, body)
            answers = await asyncio.gather(*(_post(client, body, headers) for _ in range(4)))
            return list(answers), server_id

    answers, server_id = asyncio.run(go())
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 401, 401, 401], answers
    assert all(doc["error"] == "replay" for status, doc in answers if status == 401), answers
    assert stored_reports(offline, server_id) == [(1, "once")]


def test_a_request_refused_before_its_write_is_a_replay_afterwards(tmp_path: Path) -> None:
    """A batch the handler refuses (400) never reaches the write that takes the nonce;
    the nonce is taken all the same, so the same request again is a replay, and a
    well-formed batch replayed after a refusal keeps nothing either."""
    offline = Collector(tmp_path / "data")
    _, token = offline.partner("acme")

    async def go() -> tuple[list[tuple[int, Any]], str]:
        async with app_client(offline.data_dir) as client:
            server_id, session = await _session(client, token)
            bad = b'{"protocol": 1, "reports": [{"seq": "one"}]}'
            bad_headers = _signed(session, bad)
            answers = [await _post(client, bad, bad_headers), await _post(client, bad, bad_headers)]
            return answers, server_id

    answers, server_id = asyncio.run(go())
    assert answers[0][0] == 400, answers
    assert answers[1][0] == 401 and answers[1][1]["error"] == "replay", answers
    assert stored_reports(offline, server_id) == []

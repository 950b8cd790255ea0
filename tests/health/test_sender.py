"""The sender against the real collector saying 'later' (429 with Retry-After while the
server's credential is rate-limited after a failed signature) and refusing one report as
invalid: Retry-After honoured, backoff, nothing lost, the refused report set aside."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.client import CollectorClient
from agent.sender import Sender, backoff
from agent.spool import Spool
from harness.enrolled import EnrolledAgent, enroll_agent
from harness.net import wait_until
from harness.processes import Collector
from harness.signed import report, session_raw
from protocol.messages import AgentSettings
from tests.faults.test_resilience import stored_reports

# One failed signature limits the server's credential for two seconds.
LIMITED = "[rate_limits]\naddress_failures = 1000\ncredential_failures = 1\nwindow_s = 2\n"


@dataclass
class NotingClient(CollectorClient):
    """The agent's client, noting when it tried to open a session and what it got."""

    attempts: list[tuple[float, str]] = field(default_factory=list)

    async def open_session(self) -> None:
        try:
            await super().open_session()
        except Exception as exc:
            self.attempts.append((time.monotonic(), str(exc)))
            raise
        self.attempts.append((time.monotonic(), "open"))


def site(
    make_collector: Callable[..., Collector], config: str = ""
) -> tuple[Collector, EnrolledAgent]:
    c = make_collector(config)
    _, token = c.partner("acme")
    c.cli("server", "interval", "--partner", "acme", "30s")
    return c, enroll_agent(c.url, token)


async def drain(spool: Spool, client: CollectorClient) -> list[AgentSettings]:
    """Run the sender until the spool is empty."""
    settings: list[AgentSettings] = []
    sender = Sender(
        spool, client, retry_max_s=5, on_settings=settings.append, on_event=lambda *_: None
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await asyncio.to_thread(wait_until, lambda: not len(spool), 30, 0.05, "an empty spool")
    stop.set()
    await task
    await client.close()
    return settings


def test_retry_after_is_honoured_and_nothing_is_lost(make_collector, tmp_path: Path) -> None:
    c, agent = site(make_collector, LIMITED)
    spool = Spool(tmp_path / "spool", 1 << 20)
    for seq in range(1, 4):
        spool.append(seq, json.dumps(report(seq, f"r{seq}")).encode())
    client = NotingClient(c.url, agent.server_id, agent.key)
    status = session_raw(c.url, agent.server_id)[0]
    assert status == 401  # a failed signature: the server's credential is limited now
    settings = asyncio.run(drain(spool, client))
    outcomes = [what for _, what in client.attempts]
    assert len(outcomes) == 2 and outcomes[1] == "open", outcomes
    assert "429 rate_limited" in outcomes[0] and "retry in 2 s" in outcomes[0], outcomes
    gap = client.attempts[1][0] - client.attempts[0][0]
    assert gap >= 1.9, gap  # waited as told (Retry-After: 2), not hammering
    assert [seq for seq, _ in stored_reports(c, agent.server_id)] == [1, 2, 3]
    assert len(spool) == 0
    assert settings[-1].report_interval_s == 30


def test_a_refused_report_is_set_aside_and_the_rest_go_through(
    make_collector, tmp_path: Path
) -> None:
    c, agent = site(make_collector)
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.append(1, json.dumps(report(1, "r1", collected_at="yesterday")).encode())
    for seq in (2, 3):
        spool.append(seq, json.dumps(report(seq, f"r{seq}")).encode())
    asyncio.run(drain(spool, CollectorClient(c.url, agent.server_id, agent.key)))
    assert [seq for seq, _ in stored_reports(c, agent.server_id)] == [2, 3]
    assert (tmp_path / "spool" / "rejected" / f"{1:012d}.json").exists()
    assert len(spool) == 0


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    import random

    rng = random.Random(7)
    delays = [backoff(n, 60, rng) for n in range(1, 10)]
    assert all(
        0.5 * min(60, 2**n) <= d <= min(60, 2**n) for n, d in zip(range(1, 10), delays, strict=True)
    )
    assert max(delays) <= 60

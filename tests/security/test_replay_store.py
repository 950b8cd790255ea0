"""The replay store's nonces: a nonce is taken once, whichever of two database handles
(two collector processes) asks, even while the first one's commit is still pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collector.http.replay import prune, take
from harness.database import collector_database


def test_a_nonce_is_taken_once_across_processes_and_forgotten_past_the_window(
    tmp_path: Path,
) -> None:
    a = collector_database(tmp_path / "vigil.db")
    b = collector_database(tmp_path / "vigil.db")

    async def go() -> list[bool]:
        first = await a.write_unsettled(lambda c: take(c, "n-1", 1000.0))
        again_here = await a.write_unsettled(lambda c: take(c, "n-1", 1001.0))
        # Queued after the claim, so durable no sooner than it: once this is committed,
        # the other process sees the nonce.
        await a.write(lambda c: None)
        there = await b.write_unsettled(lambda c: take(c, "n-1", 1002.0))
        other = await b.write_unsettled(lambda c: take(c, "n-2", 1003.0))
        await b.write(lambda c: None)
        return [first, again_here, there, other]

    try:
        assert asyncio.run(go()) == [True, False, False, True]
        assert a.write_sync(lambda c: prune(c, 1003.0)) == 1  # n-1, first seen at 1000
        assert a.write_sync(lambda c: take(c, "n-1", 1004.0)) is True
        assert a.write_sync(lambda c: take(c, "n-2", 1004.0)) is False
    finally:
        a.close()
        b.close()

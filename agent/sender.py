"""Draining the spool to the collector: in order, with backoff, exactly once.

A report leaves the spool only when the collector acknowledged it (accepted now, or a
duplicate of one it already has). Failures back off exponentially with jitter, and a
``Retry-After`` from the collector is honoured. A report the collector refuses as
invalid is set aside (it would block the queue forever) and logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from agent.client import CollectorClient, CollectorUnavailable, Refused, Revoked, retry_after
from agent.spool import Spool
from protocol import limits
from protocol.messages import AgentSettings, ReportAck, decode
from protocol.version import PROTOCOL_VERSION

log = logging.getLogger("vigil.agent.sender")

BASE_DELAY_S = 1.0


_rng = random.Random()


def backoff(attempt: int, max_s: float, rng: random.Random = _rng) -> float:
    """Exponential backoff with jitter: between half and all of ``min(max, 2^attempt)``."""
    ceiling = min(max_s, BASE_DELAY_S * 2 ** min(attempt, 30))
    return ceiling * (0.5 + rng.random() / 2)


class Sender:
    def __init__(
        self,
        spool: Spool,
        client: CollectorClient,
        *,
        retry_max_s: float,
        on_settings: Callable[[AgentSettings], None],
        on_event: Callable[[str, dict[str, object]], None],
    ) -> None:
        self.spool = spool
        self.client = client
        self.retry_max_s = retry_max_s
        self.on_settings = on_settings
        self.on_event = on_event
        self._wake = asyncio.Event()
        self._failures = 0
        self._failing_since: float | None = None
        self.revoked = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = await self.send_pending()
            self._wake.clear()
            if stop.is_set():
                break
            waits = [asyncio.ensure_future(stop.wait())]
            if delay is None:
                waits.append(asyncio.ensure_future(self._wake.wait()))
            try:
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def send_pending(self, limit_batches: int | None = None) -> float | None:
        """Send until the spool is empty (None) or a failure asks to wait (seconds)."""
        batches = 0
        batch_size = limits.MAX_BATCH_REPORTS
        while len(self.spool) and not self.revoked:
            if limit_batches is not None and batches >= limit_batches:
                return 0.0
            entries = self.spool.peek(batch_size, limits.MAX_BATCH_BYTES - 1024)
            if not entries:
                return None
            body = b'{"protocol":%d,"reports":[%s]}' % (
                PROTOCOL_VERSION,
                b",".join(d for _, d in entries),
            )
            try:
                resp = await self.client.request("POST", "/api/v1/agent/reports", body)
            except Revoked as exc:
                self.revoked = True
                self._fail(f"credentials revoked by the collector: {exc.message}")
                return None
            except Refused as exc:
                return self._fail(f"collector refused the session: {exc}")
            except CollectorUnavailable as exc:
                return self._fail(str(exc), exc.retry_after)
            if resp.status == 200:
                ack = decode(resp.body, ReportAck)
                self.spool.ack([seq for seq, _ in entries])
                self._recovered()
                self.on_settings(ack.settings)
                self.on_event("sent", {"reports": len(entries), "duplicates": len(ack.duplicates)})
                batches += 1
                batch_size = limits.MAX_BATCH_REPORTS
                continue
            code, msg = resp.error()
            if resp.status in (429, 503) or resp.status >= 500:
                return self._fail(
                    f"collector answered {resp.status} {code}: {msg}", retry_after(resp.headers)
                )
            if resp.status in (400, 413) and len(entries) > 1:
                batch_size = 1  # find the one report that is refused
                continue
            if resp.status in (400, 413):
                self.spool.quarantine(entries[0][0], f"{resp.status} {code}: {msg}")
                continue
            return self._fail(f"collector answered {resp.status} {code}: {msg}")
        return None

    def _fail(self, message: str, wait_s: float | None = None) -> float:
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = time.time()
            log.warning("cannot send reports (will retry, reports are kept): %s", message)
        else:
            log.debug("still cannot send reports: %s", message)
        self.on_event("error", {"message": message})
        delay = backoff(self._failures, self.retry_max_s)
        if wait_s is not None:  # the collector's Retry-After
            delay = min(max(wait_s, 0.1), 3600.0)
        return delay

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "sending reports again after %.0f s and %d failed attempt(s)",
                time.time() - self._failing_since,
                self._failures,
            )
        self._failures = 0
        self._failing_since = None

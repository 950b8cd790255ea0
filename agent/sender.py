"""Draining the spool to the collector: in order, with backoff, exactly once.

A report leaves the spool only when the collector acknowledged it (accepted now, or a
duplicate of one it already has). Failures back off exponentially with jitter. A
``Retry-After`` from the collector (429 when its ingest is full, 503 when its storage
fails) is honoured with jitter on top: never sooner than asked, and up to half as long
again, so agents the collector turned away together do not all come back in the same
second. A report the collector refuses as
invalid is set aside (it would block the queue forever) and logged.

A collector that refuses the agent itself — it no longer knows this server
(``401 unknown_server``, e.g. its database was recreated) or revoked it (``403``) — is
not retried at full rate: the reason is logged once (then once an hour), shown in the
status file, and the agent checks again every ``refused_check_s`` (default 10 min).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from agent.client import CollectorClient, CollectorUnavailable, Refused, Revoked, retry_after
from agent.spool import Spool
from protocol import limits, routes
from protocol.messages import AgentSettings, ReportAck, decode
from protocol.version import PROTOCOL_VERSION

log = logging.getLogger("vigil.agent.sender")

BASE_DELAY_S = 1.0
REFUSAL_LOG_EVERY_S = 3600.0
RETRY_AFTER_JITTER = 0.5
"""Up to this fraction of a ``Retry-After`` is added at random to it."""
MAX_RETRY_AFTER_S = 3600.0
STANDING_REFUSALS = ("unknown_server", "revoked")
"""Refusals of the agent itself: retrying sooner changes nothing until someone acts."""


_rng = random.Random()


@dataclass
class Refusal:
    """The collector refuses this agent itself (unknown or revoked) since ``since``."""

    code: str
    message: str
    since: float
    checked_at: float
    attempts: int = 0


def backoff(attempt: int, max_s: float, rng: random.Random = _rng) -> float:
    """Exponential backoff with jitter: between half and all of ``min(max, 2^attempt)``."""
    ceiling = min(max_s, BASE_DELAY_S * 2 ** min(attempt, 30))
    return ceiling * (0.5 + rng.random() / 2)


def after_retry_after(wait_s: float, rng: random.Random = _rng) -> float:
    """The wait for a collector's ``Retry-After: wait_s``: at least ``wait_s``, at most
    ``RETRY_AFTER_JITTER`` more of it (never under 0.1 s, never over an hour)."""
    wait = min(max(wait_s, 0.1), MAX_RETRY_AFTER_S)
    return min(wait * (1 + RETRY_AFTER_JITTER * rng.random()), MAX_RETRY_AFTER_S)


class Sender:
    def __init__(
        self,
        spool: Spool,
        client: CollectorClient,
        *,
        retry_max_s: float,
        refused_check_s: float = 600.0,
        on_settings: Callable[[AgentSettings], None],
        on_event: Callable[[str, dict[str, object]], None],
    ) -> None:
        self.spool = spool
        self.client = client
        self.retry_max_s = retry_max_s
        self.refused_check_s = refused_check_s
        self.on_settings = on_settings
        self.on_event = on_event
        self._wake = asyncio.Event()
        self._failures = 0
        self._failing_since: float | None = None
        self._failure_logged: tuple[str, float] | None = None
        self.revoked = False
        self.refusal: Refusal | None = None
        self.acked_cameras_digest: str | None = None
        """The camera digest the collector said it holds (``ReportAck.cameras_digest``)."""
        self._refusal_logged_at = 0.0

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
        self.spool.flush_marks()
        if self.refusal is not None:
            wait = self.refusal.checked_at + self.refused_check_s - time.time()
            if wait > 0:
                return wait
        while len(self.spool):
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
                resp = await self.client.request("POST", routes.REPORTS, body)
            except Revoked as exc:
                return self._refused(exc.code, exc.message)
            except Refused as exc:
                if exc.code in STANDING_REFUSALS:
                    return self._refused(exc.code, exc.message)
                return self._fail(f"collector refused the session: {exc}")
            except CollectorUnavailable as exc:
                return self._fail(str(exc), exc.retry_after)
            if resp.status == 200:
                try:
                    ack = decode(resp.body, ReportAck)
                except (msgspec.MsgspecError, ValueError) as exc:
                    return self._fail(f"collector answered 200 with an unreadable ack: {exc}")
                self.spool.ack([seq for seq, _ in entries])
                self.acked_cameras_digest = ack.cameras_digest
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
        now = time.time()
        if self._failing_since is None:
            self._failing_since = now
        # Logged when the streak starts, when its reason changes, and once an hour.
        kind = message.split(":", 1)[0]
        last = self._failure_logged
        if last is None or last[0] != kind or now - last[1] >= REFUSAL_LOG_EVERY_S:
            self._failure_logged = (kind, now)
            log.warning("cannot send reports (will retry, reports are kept): %s", message)
        else:
            log.debug("still cannot send reports: %s", message)
        self.on_event("error", {"message": message})
        delay = backoff(self._failures, self.retry_max_s)
        if wait_s is not None:  # the collector's Retry-After
            delay = after_retry_after(wait_s)
        return delay

    def _refused(self, code: str, message: str) -> float:
        """The collector refuses this agent itself: say why, check again slowly."""
        now = time.time()
        if self.refusal is None or self.refusal.code != code:
            self.refusal = Refusal(code, message, since=now, checked_at=now)
            self._refusal_logged_at = 0.0
        self.refusal.checked_at = now
        self.refusal.attempts += 1
        self.revoked = code == "revoked"
        if now - self._refusal_logged_at >= REFUSAL_LOG_EVERY_S:
            self._refusal_logged_at = now
            log.error("%s; checking again every %.0f s", self.refusal_words(), self.refused_check_s)
        self.on_event("error", {"message": self.refusal_words()})
        return self.refused_check_s

    def refusal_logged(self) -> None:
        """The refusal was just logged (by the daemon, at start): not again for an hour."""
        self._refusal_logged_at = time.time()

    def refusal_words(self) -> str:
        """What the installer should read in the log and in ``vigil-agent status``."""
        if self.refusal is None:
            return ""
        if self.refusal.code == "revoked":
            return (
                f"the collector revoked this agent ({self.refusal.message}): it collects "
                "no new reports and keeps those it has; enroll again "
                "('vigil-agent enroll --force --collector URL --token TOKEN')"
            )
        return (
            f"the collector does not know this agent (unknown_server: "
            f"{self.refusal.message}); enroll again "
            "('vigil-agent enroll --force --collector URL --token TOKEN')"
        )

    def _recovered(self) -> None:
        if self.refusal is not None:
            log.info("the collector accepts this agent again")
            self.refusal = None
            self.revoked = False
        self._failure_logged = None
        if self._failing_since is not None:
            log.info(
                "sending reports again after %.0f s and %d failed attempt(s)",
                time.time() - self._failing_since,
                self._failures,
            )
        self._failures = 0
        self._failing_since = None

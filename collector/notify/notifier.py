"""One process's notifier: everything between the outbox and the receivers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from collector.notify import apprise_channel, dispatch, email, store, sweep, targets, webhook
from collector.notify.channel_secrets import SecretBox
from collector.notify.delivery import Deliverer, Outcome, Send, enqueue_test, record_test
from collector.notify.settings import NotifySettings


class Notifier:
    """Everything between the outbox and the receivers, for one process."""

    def __init__(
        self,
        db: Any,
        box: SecretBox,
        settings: NotifySettings,
        *,
        clock: Callable[[], float] = time.time,
        session: aiohttp.ClientSession | None = None,
        offline: tuple[int, int] = (60, 3),
    ) -> None:
        self.db = db
        self.box = box
        self.settings = settings
        self.clock = clock
        self.session = session
        self.offline = offline
        senders: dict[str, Send] = {
            "webhook": self._webhook,
            "smtp": self._smtp,
            "apprise": self._apprise,
        }
        self.deliverer = Deliverer(db, box, senders, settings.policy(), clock)

    async def _webhook(self, ch: store.Channel, mid: str, body: bytes, now: float) -> Outcome:
        if self.session is None:
            connector = (
                None
                if self.settings.allow_private_targets
                else aiohttp.TCPConnector(resolver=targets.PublicResolver())
            )
            self.session = aiohttp.ClientSession(connector=connector)
        if not self.settings.allow_private_targets:
            try:
                targets.check_url(str(ch.config.get("url", "")))
            except targets.TargetRefused as exc:
                return Outcome(False, str(exc), 0.0)
        return await webhook.send(self.session, ch, mid, body, now)

    async def _checked(self, host: tuple[str, int] | None) -> Outcome | None:
        """A refusal if ``host`` resolves to a private address (and that is not allowed)."""
        if host is None or self.settings.allow_private_targets:
            return None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, targets.check_host, *host)
        except targets.TargetRefused as exc:
            return Outcome(False, str(exc), 0.0)
        return None

    async def _smtp(self, ch: store.Channel, mid: str, body: bytes, now: float) -> Outcome:
        port = int(ch.config.get("port") or 25)
        refused = await self._checked((str(ch.config.get("host", "")), port))
        return refused or await email.send(ch, mid, body, now)

    async def _apprise(self, ch: store.Channel, mid: str, body: bytes, now: float) -> Outcome:
        refused = await self._checked(targets.apprise_host(ch.secret))
        return refused or await apprise_channel.send(ch, mid, body, now)

    async def dispatch(self) -> int:
        """Route every unrouted event, then make the messages that are due."""
        routed = 0
        while True:
            now = self.clock()
            n = await self.db.write(lambda c, now=now: dispatch.route_events(c, now))
            routed += n
            if n < dispatch.ROUTE_BATCH:
                break
        now = self.clock()
        await self.db.write(lambda c, now=now: dispatch.flush(c, now, self.settings.public_url))
        return routed

    async def round(self) -> int:
        """One round: dispatch, then deliver; returns the delivery attempts."""
        await self.dispatch()
        return await self.deliverer.round()

    async def sweep(self) -> int:
        now = self.clock()
        interval, after = self.offline
        changes = await self.db.read(lambda c: sweep.judge(c, now, interval, after))
        await self.db.write(lambda c: sweep.prune(c, now))
        if not changes:
            return 0
        return await self.db.write(lambda c: sweep.apply(c, changes, now))

    async def send_test(self, channel_id: str) -> Outcome:
        """Send a test message to one channel now, outside its queue; logged like any."""
        now = self.clock()
        body = json.dumps(test_body(now))
        mid = await self.db.write(lambda c: enqueue_test(c, channel_id, body, now))
        outcome = await self.deliverer.send_one(channel_id, mid, body.encode(), now)
        after = self.clock()
        await self.db.write(lambda c: record_test(c, mid, channel_id, outcome, after))
        return outcome

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier", Notifier)
BOX: web.AppKey[SecretBox] = web.AppKey("notify_box", SecretBox)


def test_body(now: float) -> dict[str, Any]:
    at = dispatch._iso(now)
    return {
        "type": "test",
        "timestamp": at,
        "data": {
            "status": "firing",
            "severity": "info",
            "summary": "Vigil test message: this channel works",
            "what_to_do": "Nothing to do: this is a test message.",
            "partner": "",
            "customer": "",
            "site": "",
            "link": None,
            "events": [
                {
                    "id": "evt_test",
                    "type": "test",
                    "status": "firing",
                    "severity": "info",
                    "key": "test",
                    "subject": "test message",
                    "server": None,
                    "customer": "",
                    "site": "",
                    "at": at,
                    "since": at,
                    "repeat": False,
                    "details": {},
                    "link": None,
                }
            ],
        },
    }

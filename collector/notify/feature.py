"""Notifications as one feature of the collector's app: the background rounds (route the
outbox, make due messages, deliver them; judge the sweep conditions), the channels' health
in ``/metrics``, and the JSON API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from collector.accounts import partners
from collector.health.storage_health import writes_refused
from collector.http.appkeys import CONFIG, DB, METRICS
from collector.notify import api, delivery, store
from collector.notify.channel_secrets import SecretBox, SecretUnreadable, load_notify_key
from collector.notify.notifier import BOX, NOTIFIER, Notifier
from collector.notify.settings import NotifySettings, notify_settings
from collector.supervision import TASKS

log = logging.getLogger(__name__)


class ChannelGauges:
    """``vigil_notify_channel_healthy`` and ``vigil_notify_messages_pending``, kept after
    each round."""

    def __init__(self, registry: Any) -> None:
        self.healthy = Gauge(
            "vigil_notify_channel_healthy",
            "1 if the channel's last attempts succeeded, 0 if it keeps failing",
            ["channel", "type", "partner"],
            registry=registry,
        )
        self.pending = Gauge(
            "vigil_notify_messages_pending",
            "Messages waiting to be delivered, all channels",
            registry=registry,
        )

    def update(self, rows: list[tuple[Any, ...]], pending: int) -> None:
        self.healthy.clear()
        for cid, type_, partner, failures in rows:
            self.healthy.labels(channel=cid, type=type_, partner=partner).set(
                int(failures < store.UNHEALTHY_AFTER)
            )
        self.pending.set(pending)


def _gauge_rows(conn: Any) -> tuple[list[tuple[Any, ...]], int]:
    names = partners.names_by_id(conn)
    rows = [
        (ch.id, ch.type, names[ch.partner_id], ch.failures)
        for ch in store.list_channels(conn, None)
        if ch.partner_id in names
    ]
    return rows, delivery.pending_count(conn)


def _key_opens(conn: Any, box: SecretBox, settings: NotifySettings) -> None:
    """Log, once at start, a notification key that opens none of the stored channel
    secrets: a machine given its own key instead of the installation's. Its channels
    would fail one by one with "secret does not open"; this line says why."""
    sealed = store.sealed_secrets(conn)
    for channel_id, secret in sealed:
        try:
            box.open(channel_id, secret)
            return
        except SecretUnreadable:
            continue
    if sealed:
        where = settings.key_file or "notify.key in the data directory"
        log.critical(
            "the notification key (%s) opens none of the channel secrets in the database: "
            "every collector machine must have the same key ([notify] key_file); until it "
            "does, webhook, SMTP and Apprise channels fail",
            where,
        )


def _context(settings: NotifySettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = app[CONFIG]
        app[BOX] = SecretBox(load_notify_key(cfg.data_dir, settings.key_file))
        await app[DB].read(lambda c: _key_opens(c, app[BOX], settings))
        notifier = Notifier(
            app[DB],
            app[BOX],
            settings,
            offline=(cfg.report_interval_s, cfg.offline_after_intervals),
        )
        app[NOTIFIER] = notifier
        gauges = ChannelGauges(app[METRICS].registry)

        async def deliver() -> None:
            await notifier.round()
            gauges.update(*await app[DB].read(_gauge_rows))

        paused = lambda: writes_refused(app)  # noqa: E731
        handles = [
            # Every process sends: the outbox claims each message for one sender.
            app[TASKS].every(
                "notify", settings.interval_s, deliver, paused_when=paused, everywhere=True
            ),
            app[TASKS].every(
                "notify-sweep", settings.sweep_interval_s, notifier.sweep, paused_when=paused
            ),
        ]
        yield
        for h in handles:
            await h.stop()
        await notifier.close()

    return notify_ctx


def setup(app: web.Application) -> None:
    settings = notify_settings(app[CONFIG].raw)
    app.cleanup_ctx.append(_context(settings))
    api.setup_routes(app)

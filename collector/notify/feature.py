"""Notifications as one feature of the collector's app: the background rounds (route the
outbox, make due messages, deliver them; judge the sweep conditions), the channels' health
in ``/metrics``, and the JSON API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from prometheus_client import Gauge

from collector.accounts import partners
from collector.health.storage_health import writes_refused
from collector.http.appkeys import CONFIG, DB, METRICS
from collector.notify import api, delivery, store
from collector.notify.channel_secrets import SecretBox
from collector.notify.notifier import BOX, NOTIFIER, Notifier
from collector.notify.settings import NotifySettings, notify_settings
from collector.supervision import TASKS


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


def _context(settings: NotifySettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = app[CONFIG]
        app[BOX] = SecretBox(cfg.data_dir)
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

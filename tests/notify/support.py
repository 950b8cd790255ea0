"""An in-process notifier on a real database (SQLite, or the suite's PostgreSQL) with a
clock the test moves: for what takes hours of simulated time (retries, repeat intervals,
a receiver down for an hour)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

from collector.notify import sources, store
from collector.notify.channel_secrets import SecretBox
from collector.notify.notifier import Notifier
from collector.notify.settings import NotifySettings
from collector.storage import Database
from harness.database import empty_collector_database

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class T(NamedTuple):
    """A camera verdict change, as ingest hands it on."""

    key: str
    before: str | None
    after: str


def make_db(tmp_path: Path, servers: int = 3) -> Database:
    db = empty_collector_database(tmp_path / "vigil.db")

    def setup(c: Any) -> None:
        c.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'acme', 0)")
        c.execute("INSERT INTO partners (id, name, created_at) VALUES (2, 'other', 0)")
        for i in range(servers):
            c.execute(
                "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, "
                "enrolled_at) VALUES (?, 1, ?, ?, ?, 0)",
                (f"s{i}", f"nvr-{i}", f"m{i}", b"\x00"),
            )

    db.write_sync(setup)
    return db


def webhook_channel(db: Any, box: SecretBox, url: str, secret: str, **route: Any) -> str:
    def add(c: Any) -> str:
        ch = store.add_channel(c, box, 1, "webhook", "desk", {"url": url}, secret, T0)
        store.add_route(c, store.Route(id=0, partner_id=1, channel_id=ch.id, **route), T0)
        return ch.id

    return db.write_sync(add)


def notifier(db: Any, box: SecretBox, clock: Clock, **settings: Any) -> Notifier:
    base = {
        "retry_base_s": 30.0,
        "retry_max_s": 600.0,
        "lease_s": 60.0,
        "allow_private_targets": True,
    }
    return Notifier(db, box, NotifySettings(**{**base, **settings}), clock=clock)


def camera(db: Any, server: str, cam: str, before: str | None, after: str, at: float) -> None:
    db.write_sync(lambda c: sources.cameras_changed(c, server, [T(cam, before, after)], at))


def run(coro: Any) -> Any:
    return asyncio.run(coro)

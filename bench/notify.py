"""Notifications at fleet scale: 10,000 servers, 5 % of their cameras going down at once;
events per second from the change to delivery at a local webhook receiver, and the delay
(change committed -> message received) p50/p99.

    .venv/bin/python bench/notify.py [--servers 10000] [--cameras 16] [--share 0.05]
                                     [--sites 100]

The changes are written as ingest writes them: one write per server (group-committed),
each calling the same outbox code inside the write. One notifier (the collector's own
classes, real SQLite database with synchronous=FULL, real HTTP to a receiver thread on
127.0.0.1 that checks each Standard Webhooks signature) routes, groups and delivers.
``--sites N`` labels the servers with N sites, so the cameras of one site travel in one
message; ``--sites 0`` leaves them unlabelled (one message per server).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standardwebhooks.webhooks import Webhook

from collector.notify import sources, store
from collector.notify.channel_secrets import SecretBox, load_notify_key, new_webhook_secret
from collector.notify.notifier import Notifier
from collector.notify.settings import NotifySettings
from collector.storage.database import SQLiteDatabase


class T(NamedTuple):
    key: str
    before: str | None
    after: str


class Receiver:
    def __init__(self, secret: str) -> None:
        self.delays: list[float] = []
        self.messages = 0
        self.last = 0.0
        self.lock = threading.Lock()
        self.expected = 0
        self.all_in = threading.Event()
        rx, hook = self, Webhook(secret)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                now = time.time()
                hook.verify(body, {k.lower(): v for k, v in self.headers.items()})
                evs = json.loads(body)["data"]["events"]
                with rx.lock:
                    rx.messages += 1
                    rx.last = now
                    rx.delays += [now - dt.datetime.fromisoformat(e["at"]).timestamp() for e in evs]
                    if len(rx.delays) >= rx.expected:
                        rx.all_in.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


def setup(db: SQLiteDatabase, box: SecretBox, n: int, sites: int, url: str, secret: str) -> None:
    def fill(c: Any) -> None:
        c.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'bench', 0)")
        c.executemany(
            "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, enrolled_at) "
            "VALUES (?, 1, ?, ?, x'00', 0)",
            [(f"s{i:05d}", f"nvr-{i:05d}", f"m{i}") for i in range(n)],
        )
        if sites:
            c.executemany(
                "INSERT INTO notify_server_labels (server_id, customer, site) VALUES (?, '', ?)",
                [(f"s{i:05d}", f"site-{i % sites}") for i in range(n)],
            )
        ch = store.add_channel(c, box, 1, "webhook", "bench", {"url": url}, secret, 0)
        store.add_route(c, store.Route(0, 1, ch.id, group_wait_s=0), 0)

    db.write_sync(fill)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-notify-"))
    db = SQLiteDatabase(tmp / "vigil.db")
    box = SecretBox(load_notify_key(tmp))
    secret = new_webhook_secret()
    rx = Receiver(secret)
    setup(db, box, args.servers, args.sites, rx.url, secret)
    total = args.servers * args.cameras
    changed = random.Random(1).sample(range(total), int(total * args.share))
    by_server: dict[str, list[T]] = {}
    for i in changed:
        by_server.setdefault(f"s{i // args.cameras:05d}", []).append(
            T(f"cam-{i % args.cameras:02d}", "ok", "unreachable")
        )
    rx.expected = len(changed)
    notifier = Notifier(db, box, NotifySettings(allow_private_targets=True), clock=time.time)
    done = asyncio.Event()

    async def notify_loop() -> None:
        while not done.is_set():
            if not await notifier.round():
                await asyncio.sleep(0.05)

    loop_task = asyncio.create_task(notify_loop())
    started = time.time()
    await asyncio.gather(
        *(
            db.write(lambda c, s=s, ts=ts: sources.cameras_changed(c, s, ts, time.time()))
            for s, ts in by_server.items()
        )
    )
    written = time.time()
    await asyncio.to_thread(rx.all_in.wait)
    done.set()
    await loop_task
    await notifier.close()
    db.close()
    delays = sorted(rx.delays)
    span = rx.last - started
    return {
        "servers": args.servers,
        "cameras_changed": len(changed),
        "sites": args.sites,
        "messages": rx.messages,
        "changes_written_s": round(written - started, 2),
        "all_delivered_s": round(span, 2),
        "events_per_s": round(len(changed) / span),
        "delay_p50_s": round(statistics.median(delays), 2),
        "delay_p99_s": round(delays[int(len(delays) * 0.99) - 1], 2),
    }


def hook_cost(servers: int = 1000, n: int = 20_000) -> dict[str, Any]:
    """What the outbox adds to every stored report when nothing changes: the look-up of the
    server's active conditions (``sources.report_stored``), in µs per report."""
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-notify-"))
    db = SQLiteDatabase(tmp / "vigil.db")
    db.write_sync(
        lambda c: c.execute("INSERT INTO partners (id, name, created_at) VALUES (1, 'b', 0)")
    )
    conn = db._connect()
    conn.execute("BEGIN")
    started = time.perf_counter()
    for i in range(n):
        sources.report_stored(conn, f"s{i % servers}", [], 0.0)
    per = (time.perf_counter() - started) / n * 1e6
    conn.execute("ROLLBACK")
    conn.close()
    db.close()
    return {"report_stored_us_per_report": round(per, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--cameras", type=int, default=16, help="cameras per server")
    ap.add_argument("--share", type=float, default=0.05, help="share of cameras that go down")
    ap.add_argument("--sites", type=int, default=100, help="sites (0: none)")
    ap.add_argument("--hook-cost", action="store_true", help="only the per-report outbox cost")
    args = ap.parse_args()
    result = hook_cost() if args.hook_cost else asyncio.run(run(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Rules over simulated time: a receiver down for an hour, a flapping camera, silences,
quiet hours, the repeat interval, resolved notices and the daily digest."""

from __future__ import annotations

import asyncio

import pytest

from collector.notify import events, store
from collector.notify.channel_secrets import SecretBox, load_notify_key, new_webhook_secret
from collector.notify.delivery import Outcome, RetryPolicy, record
from tests.notify.receivers import WebhookReceiver
from tests.notify.support import T0, Clock, camera, make_db, notifier, webhook_channel


class World:
    def __init__(self, tmp_path, **route):
        self.db = make_db(tmp_path, servers=5)
        self.box = SecretBox(load_notify_key(tmp_path))
        secret = new_webhook_secret()
        self.rx = WebhookReceiver(secrets=[secret])
        self.channel = webhook_channel(self.db, self.box, self.rx.url, secret, **route)
        self.clock = Clock()
        self.n = notifier(self.db, self.box, self.clock)

    def step(self, seconds: float, rounds: int = 1) -> None:
        async def go():
            for _ in range(rounds):
                self.clock.t += seconds
                await self.n.round()
            await self.n.close()

        asyncio.run(go())

    def sent(self) -> list[tuple[str, str]]:
        return [
            (e["key"], e["status"]) for h in self.rx.delivered() for e in h.json["data"]["events"]
        ]

    def close(self):
        self.rx.close()
        self.db.close()


def test_receiver_down_for_an_hour_gets_everything_when_back_in_order(tmp_path):
    w = World(tmp_path, group_wait_s=0)
    w.rx.down = True
    for i in range(5):  # five messages, a minute apart, while the receiver is down
        camera(w.db, f"s{i}", "a", "ok", "unreachable", w.clock.t)
        w.step(60)
    w.step(60, rounds=55)  # an hour of simulated time, a round a minute
    assert w.rx.delivered() == []
    attempts = len(w.rx.hits)
    assert attempts >= 5  # retried while down, with backoff
    w.rx.down = False
    w.step(600, rounds=6)
    assert [k for k, _ in w.sent()] == [f"camera:s{i}:a" for i in range(5)]
    ids = [h.headers["webhook-id"] for h in w.rx.delivered()]
    assert ids == sorted(ids, key=lambda s: int(s.split("_")[1])) and len(set(ids)) == 5
    w.close()


def test_retries_go_on_for_more_than_a_day_then_the_message_is_given_up(tmp_path):
    db = make_db(tmp_path)
    policy = RetryPolicy()
    db.write_sync(
        lambda c: c.execute(
            "INSERT INTO notify_channels (id, partner_id, type, name, created_at) "
            "VALUES ('ch', 1, 'webhook', 'x', 0)"
        )
    )
    mid = db.write_sync(
        lambda c: c.execute(
            "INSERT INTO notify_messages (channel_id, kind, body, created_at, next_attempt_at) "
            "VALUES ('ch', 'test', '{}', ?, ?) RETURNING id",
            (T0, T0),
        ).fetchone()[0]
    )
    t, states = T0, []
    while True:
        state = db.write_sync(
            lambda c, t=t: record(c, mid, "ch", Outcome(False, "HTTP 500", 1.0), t, T0, policy)
        )
        states.append(state)
        if state != "pending":
            break
        t = db.read_sync(
            lambda c: c.execute(
                "SELECT next_attempt_at FROM notify_messages WHERE id = ?", (mid,)
            ).fetchone()[0]
        )
    assert states[-1] == "failed"
    assert t - T0 >= 24 * 3600
    ch = db.read_sync(lambda c: store.get_channel(c, 1, "ch"))
    assert not ch.healthy and ch.last_error == "HTTP 500"
    db.close()


def test_a_flapping_camera_sends_at_most_one_down_and_one_back_per_repeat_interval(tmp_path):
    w = World(tmp_path, group_wait_s=10, repeat_s=3600)
    for _ in range(10):  # down two minutes, back two minutes, for 40 minutes
        camera(w.db, "s0", "a", "ok", "unreachable", w.clock.t)
        w.step(30, rounds=4)
        camera(w.db, "s0", "a", "unreachable", "ok", w.clock.t)
        w.step(30, rounds=4)
    camera(w.db, "s0", "a", "ok", "unreachable", w.clock.t)  # and it stays down
    w.step(60, rounds=15)
    assert w.sent() == [("camera:s0:a", "firing"), ("camera:s0:a", "resolved")]
    w.step(60, rounds=10)  # the interval since the first "down" has passed
    assert w.sent()[2:] == [("camera:s0:a", "firing")]
    w.close()


def test_a_silence_sends_nothing_and_logs_the_event(tmp_path):
    w = World(tmp_path, group_wait_s=0)
    w.db.write_sync(
        lambda c: store.add_silence(c, 1, "server", "s0", T0, T0 + 3600, "maintenance", T0)
    )
    camera(w.db, "s0", "a", "ok", "unreachable", T0 + 5)
    camera(w.db, "s1", "a", "ok", "unreachable", T0 + 5)
    w.step(10, rounds=3)
    assert [k for k, _ in w.sent()] == ["camera:s1:a"]
    log = w.db.read_sync(lambda c: events.event_log(c, 1, 0, 10))
    assert log[0]["key"] == "camera:s0:a"
    assert [o["outcome"] for o in log[0]["outcomes"]] == ["silenced:1"]
    # Once the silence ends, the next change is sent again.
    w.clock.t = T0 + 3700
    camera(w.db, "s0", "b", "ok", "unreachable", w.clock.t)
    w.step(10, rounds=2)
    assert [k for k, _ in w.sent()][-1] == "camera:s0:b"
    w.close()


def test_quiet_hours_hold_warnings_but_let_critical_through(tmp_path):
    # T0 is 2027-01-15 08:00 UTC; quiet from 07:00 to 09:00.
    w = World(tmp_path, group_wait_s=0, quiet_from="07:00", quiet_until="09:00")
    camera(w.db, "s0", "a", "ok", "unreachable", T0)  # high: held
    from collector.notify import events

    w.db.write_sync(
        lambda c: events.fire(
            c, "server.offline", "server:s1", "server offline", T0, server_id="s1"
        )
    )
    w.step(60, rounds=3)
    assert w.sent() == [("server:s1", "firing")]
    w.step(3600, rounds=1)  # after 09:00
    assert w.sent()[1:] == [("camera:s0:a", "firing")]
    w.close()


def test_what_stays_broken_is_repeated_and_recovery_is_told(tmp_path):
    w = World(tmp_path, group_wait_s=0, repeat_s=3600)
    camera(w.db, "s0", "a", "ok", "unreachable", T0)
    w.step(60, rounds=2)
    w.step(1800, rounds=2)  # an hour later: once more
    camera(w.db, "s0", "a", "unreachable", "ok", w.clock.t)
    w.step(60, rounds=2)
    assert w.sent() == [
        ("camera:s0:a", "firing"),
        ("camera:s0:a", "firing"),
        ("camera:s0:a", "resolved"),
    ]
    repeat = w.rx.delivered()[1].json["data"]["events"][0]
    assert repeat["repeat"] is True
    w.close()


def test_a_digest_route_sends_one_message_a_day(tmp_path):
    # T0 is 08:00 UTC; the digest leaves at 09:00.
    w = World(tmp_path, group_wait_s=0, digest=True, digest_hour=9)
    for i in range(3):
        camera(w.db, f"s{i}", "a", "ok", "unreachable", T0)
    w.step(60, rounds=5)
    assert w.rx.delivered() == []
    w.step(3600)
    [digest] = w.rx.delivered()
    assert digest.json["type"] == "digest"
    assert len(digest.json["data"]["events"]) == 3
    w.step(3600, rounds=3)
    assert len(w.rx.delivered()) == 1
    w.close()


def test_a_customer_channel_hears_only_of_that_customers_servers(tmp_path):
    w = World(tmp_path, group_wait_s=0)
    secret = new_webhook_secret()
    own = WebhookReceiver(secrets=[secret])

    def setup(c):
        store.set_labels(c, 1, "s1", "Hotel Nord", "Lobby")
        ch = store.add_channel(
            c, w.box, 1, "webhook", "hotel desk", {"url": own.url}, secret, T0, "Hotel Nord"
        )
        store.add_route(c, store.Route(id=0, partner_id=1, channel_id=ch.id, group_wait_s=0), T0)
        with pytest.raises(store.NotifyError):
            store.add_route(
                c, store.Route(id=0, partner_id=1, channel_id=ch.id, customer="Other"), T0
            )

    w.db.write_sync(setup)
    camera(w.db, "s0", "a", "ok", "unreachable", T0)
    camera(w.db, "s1", "a", "ok", "unreachable", T0)
    w.step(10, rounds=2)
    assert sorted(k for k, _ in w.sent()) == ["camera:s0:a", "camera:s1:a"]
    [hit] = own.delivered()
    assert [e["key"] for e in hit.json["data"]["events"]] == ["camera:s1:a"]
    assert hit.json["data"]["customer"] == "Hotel Nord" and hit.json["data"]["site"] == "Lobby"
    own.close()
    w.close()

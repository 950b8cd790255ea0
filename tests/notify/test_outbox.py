"""The outbox: events commit or roll back with the change that causes them, a condition
writes one event per change, and sending is claimed per message in the database."""

from __future__ import annotations

import asyncio

import pytest

from collector.notify import alerts, dispatch, events
from collector.notify.channel_secrets import SecretBox, load_notify_key, new_webhook_secret
from harness.database import collector_database, collector_sql
from tests.notify.receivers import WebhookReceiver
from tests.notify.support import T0, Clock, T, camera, make_db, notifier, webhook_channel


def _events(db):
    return db.read_sync(
        lambda c: [
            (r[0], r[1], r[2])
            for r in c.execute("SELECT kind, status, dedup_key FROM notify_events ORDER BY id")
        ]
    )


def test_an_event_rolls_back_with_its_change_and_a_state_reported_twice_is_one_event(tmp_path):
    db = make_db(tmp_path)
    from collector.notify import sources

    def change_then_fail(c):
        c.execute("UPDATE servers SET hostname = 'changed' WHERE id = 's0'")
        sources.cameras_changed(c, "s0", [T("a", "ok", "unreachable")], T0)
        raise RuntimeError("the write fails after the change")

    with pytest.raises(RuntimeError):
        db.write_sync(change_then_fail)
    assert _events(db) == []

    camera(db, "s0", "a", "ok", "unreachable", T0)
    camera(db, "s0", "a", "unreachable", "auth_failed", T0 + 1)  # still down: no new event
    camera(db, "s0", "a", "auth_failed", "degraded", T0 + 2)  # another kind: an event
    camera(db, "s0", "a", "degraded", "ok", T0 + 3)
    camera(db, "s0", "a", "ok", "ok", T0 + 4)  # nothing active: nothing to resolve
    assert _events(db) == [
        ("camera.down", "firing", "camera:s0:a"),
        ("camera.degraded", "firing", "camera:s0:a"),
        ("camera.degraded", "resolved", "camera:s0:a"),
    ]
    db.close()


def test_two_processes_never_send_one_message_and_a_dead_claim_expires(tmp_path):
    """Two notifiers on one database (as two collector processes) route and deliver
    at the same time: each message reaches the receiver once. A claim left by a process
    killed mid-send is taken over only after its lease."""
    db = make_db(tmp_path, servers=30)
    other = collector_database(tmp_path / "vigil.db")
    box = SecretBox(load_notify_key(tmp_path))
    secret = new_webhook_secret()
    rx = WebhookReceiver(secrets=[secret])
    webhook_channel(db, box, rx.url, secret, group_wait_s=0)
    clock = Clock()
    for i in range(30):
        camera(db, f"s{i}", "a", "ok", "unreachable", T0)
    a, b = notifier(db, box, clock), notifier(other, box, clock)
    b.deliverer.holder = "other-process"

    async def both():
        await asyncio.gather(a.dispatch(), b.dispatch())
        await asyncio.gather(a.deliverer.round(), b.deliverer.round())
        await a.close()
        await b.close()

    asyncio.run(both())
    ids = [h.headers["webhook-id"] for h in rx.delivered()]
    assert len(ids) == 30 and len(set(ids)) == 30
    routed = db.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM notify_event_log").fetchone())
    assert routed[0] == 30 + 30  # each event queued once, and once in its message

    # A process claims the next message and dies before sending it.
    camera(db, "s0", "b", "ok", "unreachable", T0)
    from collector.notify.delivery import claim_next

    asyncio.run(a.dispatch())
    cid = db.read_sync(lambda c: c.execute("SELECT id FROM notify_channels").fetchone()[0])
    assert db.write_sync(lambda c: claim_next(c, cid, "dead", T0, 60)) is not None
    clock.t = T0 + 30
    asyncio.run(b.deliverer.round())
    assert len(rx.delivered()) == 30  # the lease still holds
    clock.t = T0 + 61
    asyncio.run(b.deliverer.round())
    assert len(rx.delivered()) == 31
    rx.close()
    other.close()
    db.close()


def test_every_kind_has_a_severity_and_advice():
    from collector.notify.texts import ADVICE

    assert set(events.KINDS) == set(ADVICE)
    assert all(s in events.SEVERITIES for s in events.KINDS.values())


def test_a_send_longer_than_the_lease_keeps_its_claim(tmp_path):
    """A send that outlasts the claim's lease (a receiver slow to answer, an Apprise
    service with no timeout of its own, a lease set short) keeps its claim: the sending
    process renews it while the send runs, so another process does not send the message
    a second time. Only a dead process's claim expires (the test above)."""
    db = make_db(tmp_path)
    other = collector_database(tmp_path / "vigil.db")
    box = SecretBox(load_notify_key(tmp_path))
    secret = new_webhook_secret()
    rx = WebhookReceiver(secrets=[secret])
    webhook_channel(db, box, rx.url, secret, group_wait_s=0)
    clock = Clock()
    camera(db, "s0", "a", "ok", "unreachable", T0)
    a, b = notifier(db, box, clock, lease_s=0.3), notifier(other, box, clock, lease_s=0.3)
    b.deliverer.holder = "other-process"
    send = a.deliverer.send_one
    answered = asyncio.Event()

    async def slow(*args):
        clock.t = T0 + 10  # the send outlasts the lease many times over
        await answered.wait()
        return await send(*args)

    a.deliverer.send_one = slow

    def lease_until() -> float:
        return db.read_sync(
            lambda c: c.execute("SELECT lease_until FROM notify_messages").fetchone()[0] or 0.0
        )

    async def go():
        await a.dispatch()
        sending = asyncio.create_task(a.deliverer.round())
        while lease_until() <= T0 + 10:  # noqa: ASYNC110 - renewed at the send's own time
            await asyncio.sleep(0.05)
        await b.deliverer.round()
        assert rx.delivered() == []  # b left a claim its holder keeps alone
        answered.set()
        assert await sending == 1
        await a.close()
        await b.close()

    asyncio.run(asyncio.wait_for(go(), 30))
    assert [h.headers["webhook-id"] for h in rx.hits] == ["msg_1"]
    rx.close()
    other.close()
    db.close()


def test_the_prune_drops_old_routed_events_but_the_one_an_alert_points_at(tmp_path):
    db = make_db(tmp_path)

    def write(c):
        old_routed = [events.emit(c, "camera.down", f"camera:s0:{n}", "down", T0) for n in "ab"]
        unrouted = events.emit(c, "camera.down", "camera:s0:c", "down", T0)
        recent = events.emit(c, "camera.down", "camera:s0:d", "down", T0 + 100)
        for eid in (*old_routed, recent):
            assert events.claim(c, eid, T0 + 100)
        alerts.note_event(c, 1, "camera:s0:a", old_routed[0], "firing", "camera.down", "g", T0)
        assert events.prune(c, T0 + 50) == 1
        return old_routed, unrouted, recent

    old_routed, unrouted, recent = db.write_sync(write)
    left = db.read_sync(lambda c: [r[0] for r in c.execute("SELECT id FROM notify_events")])
    assert sorted(left) == sorted([old_routed[0], unrouted, recent])
    db.close()


def test_two_processes_grouping_at_once_make_each_message_once(tmp_path):
    """Two processes' write transactions make the due messages at the same moment (on
    PostgreSQL they run at once; on SQLite one after the other): the pending alerts
    become messages once, in the process that took the round."""
    db = make_db(tmp_path, servers=5)
    box = SecretBox(load_notify_key(tmp_path))
    webhook_channel(db, box, "http://127.0.0.1:9/", new_webhook_secret(), group_wait_s=0)
    for i in range(5):
        camera(db, f"s{i}", "a", "ok", "unreachable", T0)
    assert db.write_sync(lambda c: dispatch.route_events(c, T0 + 1)) == 5
    db.close()
    with collector_sql(tmp_path) as one, collector_sql(tmp_path) as two:
        at_once = getattr(one, "dialect", "") == "postgresql"
        one.execute("BEGIN")
        made_one = dispatch.flush(one, T0 + 2)
        if not at_once:
            one.execute("COMMIT")
        two.execute("BEGIN")
        made_two = dispatch.flush(two, T0 + 2)
        two.execute("COMMIT")
        if at_once:
            one.execute("COMMIT")
        (stored,) = one.execute("SELECT COUNT(*) FROM notify_messages").fetchone()
    assert len(made_one) == 5 and made_two == [] and stored == 5

"""Whatever a camera does, the receiver hears at most one "down" and one "back" per repeat
interval, never two "back" in a row, and in the end the last word matches the camera."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.notify.channel_secrets import SecretBox, load_notify_key, new_webhook_secret
from tests.notify.receivers import WebhookReceiver
from tests.notify.support import T0, Clock, camera, make_db, notifier, webhook_channel

REPEAT = 3600.0
STEP = 300.0

changes = st.lists(
    st.tuples(st.integers(min_value=1, max_value=18), st.sampled_from(["ok", "unreachable"])),
    min_size=1,
    max_size=8,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=changes)
def test_flapping_never_floods_and_the_last_message_tells_the_truth(changes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = make_db(Path(tmp), servers=1)
        box = SecretBox(load_notify_key(Path(tmp)))
        secret = new_webhook_secret()
        rx = WebhookReceiver(secrets=[secret])
        webhook_channel(db, box, rx.url, secret, group_wait_s=0, repeat_s=REPEAT)
        clock = Clock()
        n = notifier(db, box, clock)
        state = "ok"

        async def play() -> None:
            nonlocal state
            for steps, verdict in changes:
                for _ in range(steps):
                    clock.t += STEP
                    await n.round()
                if verdict != state:
                    camera(db, "s0", "a", state, verdict, clock.t)
                    state = verdict
            for _ in range(int(2 * REPEAT / STEP) + 2):
                clock.t += STEP
                await n.round()
            await n.close()

        asyncio.run(play())
        sent = [
            (dt.datetime.fromisoformat(h.json["timestamp"]).timestamp(), e["status"], e["repeat"])
            for h in rx.delivered()
            for e in h.json["data"]["events"]
        ]
        rx.close()
        db.close()
    for status in ("firing", "resolved"):
        times = [t for t, s, _ in sent if s == status]
        assert all(b - a >= REPEAT for a, b in itertools.pairwise(times)), sent
    news = [s for _, s, repeat in sent if not repeat]
    assert all(a != b for a, b in itertools.pairwise(news)), sent
    assert not news or news[0] == "firing"
    if state == "unreachable":
        assert sent and sent[-1][1] == "firing", sent
    elif sent:
        assert sent[-1][1] == "resolved", sent
    assert T0 < min((t for t, _, _ in sent), default=T0 + 1)

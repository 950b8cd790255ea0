"""Delivering messages: claimed per message in the database, in order per channel, retried.

A sender claims a channel's oldest pending message with ``UPDATE … SET claimed_by,
lease_until … WHERE claimed_by IS NULL OR lease_until < now``; only the process whose
update changed the row sends it. The sender renews its claim every third of the lease
while the send runs, so a send slower than the lease (a receiver slow to answer, an
Apprise service with no timeout of its own) is never taken over by another process; a
process killed while sending leaves a lease that expires, after which any process sends
it again (the ``webhook-id`` stays the same, so a receiver can drop what it already has).
A channel's messages leave one after the other: while its oldest fails, the next waits,
so a receiver that was down gets them in order.
A failed attempt is retried after ``retry_base_s`` doubling up to ``retry_max_s``, until
the message is ``give_up_s`` old (26 h by default, so retries span at least a day). Every
attempt is logged (answer, latency); a channel whose last attempts failed is unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from collector.notify import store
from collector.notify.channel_secrets import SecretBox, SecretUnreadable
from collector.notify.store import Channel, NotFound, get_channel


@dataclass
class Outcome:
    ok: bool
    answer: str
    latency_ms: float


@dataclass
class RetryPolicy:
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    give_up_s: float = 26 * 3600.0
    lease_s: float = 60.0

    def backoff(self, attempts: int) -> float:
        return min(self.retry_base_s * 2 ** max(0, attempts - 1), self.retry_max_s)


Send = Callable[[Channel, str, bytes, float], Awaitable[Outcome]]
"""A channel type's sender: (channel with secrets, message id, JSON body, now)."""

HOLDER = f"{uuid.uuid4().hex[:12]}"
"""This process's name in claims."""


def _head(conn: sqlite3.Connection, channel_id: str) -> Any:
    return conn.execute(
        "SELECT id, next_attempt_at, claimed_by, lease_until FROM notify_messages "
        "WHERE channel_id = ? AND state = 'pending' ORDER BY id LIMIT 1",
        (channel_id,),
    ).fetchone()


def claim_next(
    conn: sqlite3.Connection, channel_id: str, holder: str, now: float, lease_s: float
) -> tuple[int, str, float] | None:
    """Claim the channel's oldest pending message if it is due; (id, body, created_at)."""
    head = _head(conn, channel_id)
    if head is None or head[1] > now:
        return None
    n = conn.execute(
        "UPDATE notify_messages SET claimed_by = ?, lease_until = ? WHERE id = ? "
        "AND state = 'pending' AND (claimed_by IS NULL OR lease_until < ?)",
        (holder, now + lease_s, head[0], now),
    ).rowcount
    if n != 1:
        return None
    row = conn.execute(
        "SELECT body, created_at FROM notify_messages WHERE id = ?", (head[0],)
    ).fetchone()
    return int(head[0]), row[0], float(row[1])


def renew(
    conn: sqlite3.Connection, message_id: int, holder: str, now: float, lease_s: float
) -> bool:
    """Extend ``holder``'s claim on a message it is sending; False once it is not its."""
    return (
        conn.execute(
            "UPDATE notify_messages SET lease_until = ? WHERE id = ? AND claimed_by = ? "
            "AND state = 'pending'",
            (now + lease_s, message_id, holder),
        ).rowcount
        == 1
    )


def _log_attempt(
    conn: sqlite3.Connection, message_id: int, channel_id: str, outcome: Outcome, now: float
) -> None:
    """The attempt in the delivery log, and the channel's health after it."""
    conn.execute(
        "INSERT INTO notify_attempts (message_id, channel_id, at, ok, answer, latency_ms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (message_id, channel_id, now, int(outcome.ok), outcome.answer, outcome.latency_ms),
    )
    store.note_attempt(conn, channel_id, outcome.ok, outcome.answer, now)


def record(
    conn: sqlite3.Connection,
    message_id: int,
    channel_id: str,
    outcome: Outcome,
    now: float,
    created_at: float,
    policy: RetryPolicy,
) -> str:
    """Log the attempt; move the message on. Returns its new state."""
    _log_attempt(conn, message_id, channel_id, outcome, now)
    if outcome.ok:
        conn.execute(
            "UPDATE notify_messages SET state = 'delivered', delivered_at = ?, "
            "attempts = attempts + 1, claimed_by = NULL, last_error = '' WHERE id = ?",
            (now, message_id),
        )
        return "delivered"
    attempts = (
        conn.execute("SELECT attempts FROM notify_messages WHERE id = ?", (message_id,)).fetchone()[
            0
        ]
        + 1
    )
    state = "failed" if now - created_at >= policy.give_up_s else "pending"
    conn.execute(
        "UPDATE notify_messages SET state = ?, attempts = ?, next_attempt_at = ?, "
        "claimed_by = NULL, last_error = ? WHERE id = ?",
        (state, attempts, now + policy.backoff(attempts), outcome.answer, message_id),
    )
    return state


def enqueue(
    conn: sqlite3.Connection, channel_id: str, route_id: int, kind: str, body: str, now: float
) -> int:
    """A message for a channel, due now; returns its id."""
    cur = conn.execute(
        "INSERT INTO notify_messages (channel_id, route_id, kind, body, created_at, "
        "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (channel_id, route_id, kind, body, now, now),
    )
    return int(cur.fetchone()[0])


def enqueue_test(conn: sqlite3.Connection, channel_id: str, body: str, now: float) -> int:
    """A test message: sent at once by the caller, never by a sender (see :func:`record_test`)."""
    return int(
        conn.execute(
            "INSERT INTO notify_messages (channel_id, kind, body, created_at, state, "
            "next_attempt_at) VALUES (?, 'test', ?, ?, 'test', ?) RETURNING id",
            (channel_id, body, now, now),
        ).fetchone()[0]
    )


def pending_count(conn: sqlite3.Connection) -> int:
    """Messages waiting to be delivered, all channels."""
    return int(
        conn.execute("SELECT COUNT(*) FROM notify_messages WHERE state = 'pending'").fetchone()[0]
    )


def drop_pending(conn: sqlite3.Connection, channel_id: str) -> None:
    """The channel's undelivered messages will never be sent (it was removed)."""
    conn.execute(
        "UPDATE notify_messages SET state = 'dropped' WHERE channel_id = ? AND state = 'pending'",
        (channel_id,),
    )


def delivery_log(conn: sqlite3.Connection, channel_id: str, limit: int) -> list[dict[str, Any]]:
    """The channel's latest attempts, newest first."""
    return [
        {
            "message": f"msg_{r[0]}",
            "kind": r[1],
            "at": r[2],
            "ok": bool(r[3]),
            "answer": r[4],
            "latency_ms": round(r[5], 1),
            "message_state": r[6],
        }
        for r in conn.execute(
            "SELECT a.message_id, m.kind, a.at, a.ok, a.answer, a.latency_ms, m.state "
            "FROM notify_attempts a JOIN notify_messages m ON m.id = a.message_id "
            "WHERE a.channel_id = ? ORDER BY a.id DESC LIMIT ?",
            (channel_id, limit),
        )
    ]


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Drop the attempts made before ``before``, and the messages created before it that
    are done with."""
    n = conn.execute("DELETE FROM notify_attempts WHERE at < ?", (before,)).rowcount
    n += conn.execute(
        "DELETE FROM notify_messages WHERE created_at < ? AND state <> 'pending'", (before,)
    ).rowcount
    return n


def record_test(
    conn: sqlite3.Connection, message_id: int, channel_id: str, outcome: Outcome, now: float
) -> None:
    """A test message's one attempt: logged like any, never retried (it never is
    ``pending``, so no sender picks it up)."""
    _log_attempt(conn, message_id, channel_id, outcome, now)
    conn.execute(
        "UPDATE notify_messages SET state = ?, attempts = 1, delivered_at = ?, last_error = ? "
        "WHERE id = ?",
        (
            "delivered" if outcome.ok else "failed",
            now if outcome.ok else None,
            "" if outcome.ok else outcome.answer,
            message_id,
        ),
    )


class Deliverer:
    """Sends what is due on every channel, one message at a time per channel."""

    def __init__(
        self,
        db: Any,
        box: SecretBox,
        senders: dict[str, Send],
        policy: RetryPolicy,
        clock: Callable[[], float],
        holder: str = HOLDER,
    ) -> None:
        self.db = db
        self.box = box
        self.senders = senders
        self.policy = policy
        self.clock = clock
        self.holder = holder

    async def round(self) -> int:
        """Deliver until nothing is due; return the attempts made."""
        channels = await self.db.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT channel_id FROM notify_messages WHERE state = 'pending'"
                )
            ]
        )
        done = await asyncio.gather(*(self._channel(cid) for cid in channels))
        return sum(done)

    async def _channel(self, channel_id: str) -> int:
        attempts = 0
        now = self.clock()
        claimed = await self.db.write(
            lambda c: claim_next(c, channel_id, self.holder, now, self.policy.lease_s)
        )
        while claimed is not None:
            mid, body, created_at = claimed
            outcome = await self._keeping_claim(
                mid, self.send_one(channel_id, mid, body.encode(), now)
            )
            attempts += 1
            now = self.clock()

            def settle(
                c: Any, o: Outcome = outcome, m: int = mid, t: float = created_at, now: float = now
            ) -> Any:
                # The answer and the next claim in one commit: half the commits per message.
                state = record(c, m, channel_id, o, now, t, self.policy)
                if state == "pending":
                    return None  # the next waits for this one
                return claim_next(c, channel_id, self.holder, now, self.policy.lease_s)

            claimed = await self.db.write(settle)
        return attempts

    async def _keeping_claim(self, mid: int, send: Awaitable[Outcome]) -> Outcome:
        """``send``, renewing this process's claim on message ``mid`` while it runs."""
        lease_s = self.policy.lease_s

        def renewing(now: float) -> Callable[[Any], bool]:
            return lambda c: renew(c, mid, self.holder, now, lease_s)

        async def keep() -> None:
            while True:
                await asyncio.sleep(lease_s / 3)
                with contextlib.suppress(Exception):  # unrenewed, the claim runs its lease
                    await self.db.write(renewing(self.clock()))

        keeper = asyncio.get_running_loop().create_task(keep())
        try:
            return await send
        finally:
            keeper.cancel()

    async def send_one(self, channel_id: str, mid: int, body: bytes, now: float) -> Outcome:
        try:
            ch = await self.db.read(lambda c: get_channel(c, None, channel_id, self.box))
        except NotFound:
            return Outcome(False, "channel removed", 0.0)
        except SecretUnreadable as exc:
            return Outcome(False, str(exc), 0.0)
        sender = self.senders.get(ch.type)
        if sender is None:
            return Outcome(False, f"no sender for {ch.type}", 0.0)
        try:
            return await sender(ch, f"msg_{mid}", body, now)
        except Exception as exc:  # a channel's failure is logged on it, never raised
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], 0.0)


def decode(body: str) -> dict[str, Any]:
    return json.loads(body)

"""One process at a time for a round of read-then-write work, inside its transaction.

SQLite runs one write transaction at a time (``BEGIN IMMEDIATE``), so a round that reads
rows and writes what follows from them (notification routing and grouping: read the
pending alerts, make one message of them, mark them sent) never meets another process's
round half-way. PostgreSQL runs several processes' write transactions at once under READ
COMMITTED: two processes flushing the same pending alerts would each make a message of
them, and the receiver would get it twice. :func:`try_round_lock` takes a transaction
advisory lock named for the round there; the process that does not get it skips the
round (the one that holds it does the work; the next round comes soon), so the event
loop that runs the writes never waits for another process.
"""

from __future__ import annotations

from typing import Any


def try_round_lock(conn: Any, name: str) -> bool:
    """Inside a write transaction: may this transaction run round ``name``? Always on
    SQLite; on PostgreSQL unless another transaction holds the round's lock (released
    when that transaction ends)."""
    if getattr(conn, "dialect", "") != "postgresql":
        return True
    row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(?))", (f"vigil:{name}",))
    return bool(row.fetchone()[0])

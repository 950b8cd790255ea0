"""psycopg 3 against asyncpg for the collector's PostgreSQL statements.

Two workloads, each the shape the collector sends: a point lookup by key (the per-request
authentication of an agent session) and a group commit (one transaction of 100 upserts of
a server's state, each in its own SAVEPOINT, as the writer batches reports). psycopg runs
synchronously, as the collector's repositories call it; asyncpg from an event loop.

    .venv/bin/pip install asyncpg   # only for this comparison; not a dependency
    .venv/bin/python bench/pg_drivers.py [--dsn postgresql://…] [--seconds 3]

Without ``--dsn`` a private PostgreSQL is started in a temporary directory (as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = 1000
BATCH = 100
SETUP = (
    "DROP TABLE IF EXISTS bench_servers",
    "CREATE TABLE bench_servers (id TEXT PRIMARY KEY, partner_id BIGINT NOT NULL, "
    "last_seen DOUBLE PRECISION, last_seq BIGINT NOT NULL DEFAULT 0, state TEXT)",
)
UPSERT = (
    "INSERT INTO bench_servers (id, partner_id, last_seen, last_seq, state) "
    "VALUES ($1, 1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, "
    "last_seq = excluded.last_seq, state = excluded.state"
)
LOOKUP = "SELECT partner_id, last_seq FROM bench_servers WHERE id = $1"


def _pg(sql: str) -> str:
    for n in range(9, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


def rate(fn: Callable[[int], None], seconds: float) -> float:
    """Operations per second of ``fn(i)`` over about ``seconds``."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(done)
        done += 1
    return done / (time.perf_counter() - start)


def bench_psycopg(dsn: str, seconds: float) -> tuple[float, float]:
    conn = psycopg.connect(dsn, autocommit=True)
    for stmt in SETUP:
        conn.execute(stmt)
    upsert, lookup = _pg(UPSERT), _pg(LOOKUP)
    conn.execute("BEGIN")
    for i in range(ROWS):
        conn.execute(upsert, (f"s{i}", 0.0, 0, "{}"))
    conn.execute("COMMIT")

    def point(i: int) -> None:
        conn.execute(lookup, (f"s{i % ROWS}",)).fetchone()

    def batch(i: int) -> None:
        conn.execute("BEGIN")
        for j in range(BATCH):
            conn.execute("SAVEPOINT job")
            conn.execute(upsert, (f"s{(i * BATCH + j) % ROWS}", time.time(), i, '{"ok": 1}'))
            conn.execute("RELEASE job")
        conn.execute("COMMIT")

    result = rate(point, seconds), rate(batch, seconds) * BATCH
    conn.close()
    return result


async def _arate(fn: Callable[[int], object], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await fn(done)  # type: ignore[misc]
        done += 1
    return done / (time.perf_counter() - start)


async def bench_asyncpg(dsn: str, seconds: float) -> tuple[float, float]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    for stmt in SETUP:
        await conn.execute(stmt)
    await conn.executemany(UPSERT, [(f"s{i}", 0.0, 0, "{}") for i in range(ROWS)])

    async def point(i: int) -> None:
        await conn.fetchrow(LOOKUP, f"s{i % ROWS}")

    async def batch(i: int) -> None:
        async with conn.transaction():
            for j in range(BATCH):
                async with conn.transaction():  # a SAVEPOINT inside the outer one
                    await conn.execute(
                        UPSERT, f"s{(i * BATCH + j) % ROWS}", time.time(), i, '{"ok": 1}'
                    )

    result = await _arate(point, seconds), await _arate(batch, seconds) * BATCH
    await conn.close()
    return result


@contextlib.contextmanager
def _server(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    from tests.private_postgres import private_postgres

    with private_postgres() as server:
        yield server.url()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    with _server(args.dsn) as dsn:
        p_point, p_batch = bench_psycopg(dsn, args.seconds)
        a_point, a_batch = asyncio.run(bench_asyncpg(dsn, args.seconds))
    print(f"{'driver':<10} {'point lookups/s':>16} {'upserts/s in 100-job commits':>30}")
    print(f"{'psycopg':<10} {p_point:>16,.0f} {p_batch:>30,.0f}")
    print(f"{'asyncpg':<10} {a_point:>16,.0f} {a_batch:>30,.0f}")


if __name__ == "__main__":
    main()

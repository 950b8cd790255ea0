"""The PostgreSQL backend's translation of the collector's SQLite-flavoured SQL: ``?``
placeholders, literal ``%``, column types wide enough for epoch times and 64-bit sizes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.storage.postgres import PostgresDatabase, translate
from harness.database import PrivatePostgres, private_postgres


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "?", "%", "'x?%'", "=", "1"]), max_size=30))
def test_placeholders_outside_literals_become_percent_s(parts: list[str]) -> None:
    sql = "".join(parts)
    out = translate(sql)
    outside = [p for p in parts if not p.startswith("'")]
    assert out.count("%s") >= sum(p == "?" for p in outside)
    assert out.replace("%s", "").replace("%%", "").count("%") == 0
    assert "'x?%%'" in out if "'x?%'" in parts else True


@pytest.fixture
def pg_db(postgres_server: PrivatePostgres | None) -> Iterator[PostgresDatabase]:
    with contextlib.ExitStack() as stack:
        server = postgres_server or stack.enter_context(private_postgres())
        db = PostgresDatabase(server.new_database())
        stack.callback(db.close)
        yield db


def test_times_and_sizes_keep_their_precision(pg_db: PostgresDatabase) -> None:
    at = time.time()  # sub-second: a 4-byte REAL would round it to minutes
    big = 5 * 2**32 + 7  # a backup size past a 4-byte INTEGER
    pg_db.write_sync(
        lambda c: c.execute(
            "INSERT INTO partners (name, created_at, report_interval_s) VALUES (?, ?, ?)",
            ("acme", at, big),
        )
    )
    row = pg_db.read_sync(
        lambda c: c.execute(
            "SELECT id, created_at, report_interval_s FROM partners WHERE name LIKE 'ac%'"
        ).fetchone()
    )
    assert row["created_at"] == at and row[1] == at
    assert row["report_interval_s"] == big and row.keys() == [
        "id",
        "created_at",
        "report_interval_s",
    ]


def test_a_failing_job_rolls_back_alone_in_the_group_commit(pg_db: PostgresDatabase) -> None:
    import asyncio

    def add(name: str):
        return lambda c: c.execute(
            "INSERT INTO partners (name, created_at) VALUES (?, ?)", (name, 0.0)
        )

    async def go() -> list[object]:
        return await asyncio.gather(
            pg_db.write(add("one")),
            pg_db.write(add("one")),  # unique name: this one fails
            pg_db.write(add("two")),
            return_exceptions=True,
        )

    results = asyncio.run(go())
    assert isinstance(results[1], Exception) and not isinstance(results[0], Exception)
    names = pg_db.read_sync(lambda c: [r[0] for r in c.execute("SELECT name FROM partners")])
    assert sorted(names) == ["one", "two"]

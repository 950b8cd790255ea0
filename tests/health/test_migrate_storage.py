"""``vigil-collector migrate-storage``: a SQLite installation moved to PostgreSQL keeps its
partners, keys, servers and history; its agents go on reporting without re-enrolling."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.database import PrivatePostgres, private_postgres
from harness.processes import BIN, Collector
from harness.signed import batch, post_signed, report, session_for


@pytest.fixture
def pg_url(postgres_server: PrivatePostgres | None) -> Iterator[str]:
    """An empty PostgreSQL database: on the session's server, or a private one."""
    with contextlib.ExitStack() as stack:
        server = postgres_server or stack.enter_context(private_postgres())
        yield server.new_database()


def _migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-collector"), "migrate-storage", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.sqlite_only
def test_sqlite_installation_moves_to_postgresql(tmp_path: Path, make_agent, pg_url: str) -> None:
    old = Collector(tmp_path / "collector").start()
    key, token = old.partner("acme")
    agent = make_agent()
    server_id = agent.enroll(old.url, token)
    first = report(1)
    session = session_for(agent.state_dir, old.url)
    assert post_signed(old.url, session, "/api/v1/agent/reports", batch(first))[0] == 200
    old.stop()
    source = f"sqlite:///{tmp_path / 'collector' / 'vigil.db'}"

    dry = _migrate("--from", source, "--to", pg_url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would copy" in dry.stdout
    assert [ln.split() for ln in dry.stdout.splitlines() if ln.startswith("servers ")] == [
        ["servers", "1"]
    ]
    assert _tables(pg_url) == set(), "a dry run writes nothing"

    done = _migrate("--from", source, "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert "copied and counted" in done.stdout
    again = _migrate("--from", source, "--to", pg_url)
    assert again.returncode == 1 and "not empty" in again.stderr

    (tmp_path / "collector" / "vigil.db").rename(tmp_path / "old-vigil.db")
    new = Collector(tmp_path / "collector", env={"VIGIL_STORAGE_URL": pg_url}).start()
    try:
        assert not (tmp_path / "collector" / "vigil.db").exists(), "serves from PostgreSQL"
        session = session_for(agent.state_dir, new.url)  # a new session, no re-enrollment
        status, ack = post_signed(
            new.url, session, "/api/v1/agent/reports", batch(first, report(2))
        )
        assert status == 200
        assert ack["duplicates"] == [first["report_id"]] and len(ack["accepted"]) == 1
        status, detail = new.api(key, f"/api/v1/servers/{server_id}")
        assert status == 200
        assert detail["reports_received"] == 2 and detail["last_seq"] == 2
    finally:
        new.kill(signal.SIGTERM)

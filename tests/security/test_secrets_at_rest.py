"""What a copy of the collector's database or data directory is worth to a thief: nothing
that signs in as an agent or a partner; and the files are the collector user's alone."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import secrets_store
from collector.accounts.partners import Partner
from collector.cli import main as collector_main
from collector.storage import SQLiteDatabase
from collector.storage.migrations import _statements, available
from harness.net import http, http_no_redirect, page_session_cookie
from harness.processes import Collector
from harness.signed import batch, enroll_raw, post_signed, report, session_for
from tests.conftest import MakeCollector

UNLIMITED = "[rate_limits]\naddress_failures = 1000000\ncredential_failures = 1000000\n"
REPORTS = "/api/v1/agent/reports"

# The database file itself (its mode, a stolen copy, an old schema): SQLite only.
pytestmark = pytest.mark.sqlite_only


def _busy_collector(make_collector: MakeCollector, make_agent) -> tuple[Collector, dict]:
    """Two partners, an agent each with a session and a report, a browser sign-in."""
    old = os.umask(0o022)  # what a service manager usually gives
    try:
        c = make_collector(UNLIMITED)
    finally:
        os.umask(old)
    made: dict = {"keys": [], "tokens": [], "sessions": [], "cookies": []}
    for name in ("acme", "rival"):
        key, token = c.partner(name)
        agent = make_agent(name)
        agent.enroll(c.url, token)
        session = session_for(agent.state_dir, c.url)
        assert post_signed(c.url, session, REPORTS, batch(report(1)))[0] == 200
        made["keys"].append(key)
        made["tokens"].append(token)
        made["sessions"].append(session)
        made["cookies"].append(page_session_cookie(c.url, key)["Cookie"])
    return c, made


def _values(db: Path) -> Iterator[tuple[str, str, object]]:
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            cur = conn.execute(f'SELECT * FROM "{t}"')
            cols = [d[0] for d in cur.description]
            for row in cur:
                for col, value in zip(cols, row, strict=True):
                    yield t, col, value
    finally:
        conn.close()


def test_the_data_directory_is_private(make_collector: MakeCollector, make_agent) -> None:
    c, _ = _busy_collector(make_collector, make_agent)
    assert stat.S_IMODE(c.data_dir.stat().st_mode) == 0o700
    seen = set()
    for path in c.data_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{path.relative_to(c.data_dir)} is {oct(mode)}"
        seen.add(path.name)
    assert {"vigil.db", "vigil.db-wal", "vigil.db-shm"} <= seen, seen


def test_existing_files_are_made_private_at_start(tmp_path: Path, make_collector) -> None:
    data = tmp_path / "collector"
    (data / "backups").mkdir(parents=True)
    data.chmod(0o755)
    (data / "backups").chmod(0o755)
    db = sqlite3.connect(data / "vigil.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    (data / "vigil.db").chmod(0o644)
    make_collector("")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "backups").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "vigil.db").stat().st_mode) == 0o600


def test_an_admin_command_in_process_makes_private_files_and_keeps_the_umask(
    tmp_path: Path, capsys
) -> None:
    """``main()`` of ``vigil-collector`` called inside another program (as tests do)
    creates its files private and gives that program its umask back."""
    data = tmp_path / "collector"
    before = os.umask(0o022)
    try:
        assert collector_main(["partner", "add", "acme", "--data", str(data)]) == 0
        after = os.umask(0o022)
    finally:
        os.umask(before)
    assert after == 0o022, f"the umask was left at {oct(after)}"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path.relative_to(data)
    (tmp_path / "probe").write_text("")
    assert stat.S_IMODE((tmp_path / "probe").stat().st_mode) == 0o644


def test_a_copy_of_the_database_holds_no_usable_credential(
    tmp_path: Path, make_collector: MakeCollector, make_agent
) -> None:
    c, made = _busy_collector(make_collector, make_agent)
    copy = tmp_path / "stolen.db"
    src = sqlite3.connect(c.data_dir / "vigil.db")
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()

    raw = b"".join(p.read_bytes() for p in c.data_dir.iterdir() if p.name.startswith("vigil.db"))
    for secret in made["keys"] + made["tokens"] + [ck.split("=", 1)[1] for ck in made["cookies"]]:
        assert secret.encode() not in raw
    for _, key in made["sessions"]:
        assert key not in raw

    words: set[str] = set()
    blobs: set[bytes] = set()
    session_ids: set[str] = set()
    for table, col, value in _values(copy):
        if isinstance(value, bytes):
            blobs.add(value)
            words.update({value.hex(), base64.b64encode(value).decode()})
        elif isinstance(value, str) and 8 <= len(value) <= 200 and " " not in value:
            words.add(value)
            if table == "sessions" and col == "id":
                session_ids.add(value)
    assert session_ids == {sid for sid, _ in made["sessions"]}
    assert len(words) > 20 and blobs

    # The real credentials work: the tries below would get in if a copy held one.
    assert c.api(made["keys"][0], "/api/v1/servers")[0] == 200
    assert post_signed(c.url, made["sessions"][0], REPORTS, batch(report(2)))[0] == 200

    for word in sorted(words):
        assert c.api(word, "/api/v1/servers")[0] == 401, word
        assert enroll_raw(c.url, word)[0] == 403, word
        status, headers, _ = http_no_redirect(
            "GET", c.url + "/", headers={"Cookie": f"vigil_session={word}"}
        )
        assert status == 302 and dict(headers)["Location"] == "/login", word
    for sid in session_ids:
        for blob in blobs:
            status, _ = post_signed(c.url, (sid, blob), REPORTS, batch(report(9)))
            assert status == 401, (sid, blob)
    status, _, _ = http("GET", c.url + "/healthz")
    assert status == 200


def test_credentials_made_before_the_migration_keep_working(tmp_path: Path) -> None:
    """A database of the previous schema: its API keys and tokens (already hashes) still
    work; its session keys, stored in clear then, are dropped."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(
        "CREATE TABLE schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    for version, name, sql in (m for m in available("sqlite") if m[0] < 50):
        for stmt in _statements(sql):
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    # The partner row as the schema of then holds it (today's add_partner writes newer columns).
    row = conn.execute("INSERT INTO partners (name, created_at) VALUES ('acme', 0) RETURNING id")
    partner = Partner(int(row.fetchone()[0]), "acme")
    key = "vgl_key_" + "o" * 43  # as the schema of then stored one: a hash and a prefix
    conn.execute(
        "INSERT INTO api_keys (partner_id, key_hash, prefix, created_at) VALUES (?, ?, ?, 0)",
        (partner.id, secrets_store.digest(key), key[:14]),
    )
    conn.execute(
        "INSERT INTO enrollment_tokens (partner_id, token_hash, uses_left, expires_at, "
        "created_at) VALUES (?, ?, 1, ?, 0)",
        (partner.id, secrets_store.digest("vgl_enr_old"), time.time() + 3600),
    )
    conn.execute(
        "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, enrolled_at) "
        "VALUES ('srv_old', ?, 'h', 'm', ?, 0)",
        (partner.id, b"k" * 32),
    )
    conn.execute(
        "INSERT INTO sessions (id, server_id, key, created_at, expires_at) "
        "VALUES ('ses_old', 'srv_old', ?, 0, ?)",
        (b"s" * 32, time.time() + 3600),
    )
    conn.close()

    db = SQLiteDatabase(path)
    try:
        assert db.read_sync(lambda c: secrets_store.partner_for_api_key(c, key)) == partner
        grant = db.write_sync(lambda c: secrets_store.consume_token(c, "vgl_enr_old", time.time()))
        assert grant.partner_id == partner.id and not grant.allow_reenroll
        assert db.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]) == 0
    finally:
        db.close()

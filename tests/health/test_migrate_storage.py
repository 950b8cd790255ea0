"""``vigil-collector migrate-storage``: a SQLite installation moved to PostgreSQL keeps its
partners, keys, servers and history, its contracts, notification settings and users; its
agents go on reporting without re-enrolling, its users sign in with their passwords."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness.database import PrivatePostgres, private_postgres
from harness.net import http
from harness.processes import BIN, Collector
from harness.signed import batch, post_signed, report, session_for
from tests.portal.world import sign_in


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


TODAY = time.strftime("%Y-%m-%d")
CONFIG = "[notify]\nallow_private_targets = true\n"
CONTRACTS = (
    "contract_id,customer,partner,plan,licence_ids,start,installed_on\n"
    f"C-1,Museum,acme,maintenance-support,L1,{TODAY},{TODAY}\n"
)
LISTINGS = (
    ("channel", "list", "--json"),
    ("route", "list", "--json"),
    ("silence", "list", "--json"),
    ("user", "list", "--json"),
)


def _settings(old: Collector, server_id: str) -> str:
    """Notification channel, route and silence, a customer and a user with a password:
    the settings made since the first tables; return the user's password."""
    channel = old.last_line(
        "channel", "add", "--partner", "acme", "--type", "webhook", "--url", "http://127.0.0.1:9/"
    )
    old.cli("route", "add", "--partner", "acme", "--channel", channel)
    old.cli(
        "silence",
        "add",
        "--partner",
        "acme",
        "--scope",
        "server",
        "--value",
        server_id,
        "--duration",
        "2h",
        "--reason",
        "moving",
    )
    old.cli("org", "add", "Museum", "--customer-of", "acme")
    user = ("user", "add", "ops@acme.example", "--partner", "acme", "--role", "operator")
    return old.last_line(*user)


DELIVERY = {"healthy", "failures_in_a_row", "last_error", "last_ok_at", "last_failed_at"}
"""A channel's delivery state: attempts to the closed port go on after the listing."""


def _listed(c: Collector) -> dict[tuple[str, ...], object]:
    out = {args: json.loads(c.cli(*args)) for args in LISTINGS}
    for ch in out[LISTINGS[0]]["channels"]:
        for k in DELIVERY:
            ch.pop(k)
    return out


@pytest.mark.sqlite_only
def test_sqlite_installation_moves_to_postgresql(tmp_path: Path, make_agent, pg_url: str) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(CONFIG)
    old = Collector(tmp_path / "collector", config=config).start()
    key, token = old.partner("acme")
    agent = make_agent()
    server_id = agent.enroll(old.url, token)
    first = report(1)
    session = session_for(agent.state_dir, old.url)
    assert post_signed(old.url, session, "/api/v1/agent/reports", batch(first))[0] == 200
    password = _settings(old, server_id)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    imported = http("POST", old.url + "/api/v1/contracts/import", CONTRACTS.encode(), headers)
    assert imported[0] == 200, imported
    listed = _listed(old)
    contracts = old.api(key, "/api/v1/contracts")
    assert contracts[0] == 200 and contracts[1]["count"] == 1
    old.stop()
    source = f"sqlite:///{tmp_path / 'collector' / 'vigil.db'}"

    dry = _migrate("--from", source, "--to", pg_url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would copy" in dry.stdout
    counted = dict(ln.split()[:2] for ln in dry.stdout.splitlines() if len(ln.split()) == 2)
    for table in (
        "servers",
        "notify_channels",
        "notify_routes",
        "notify_silences",
        "customers",
        "contracts",
        "web_sessions",
    ):
        assert table in counted, (table, dry.stdout)
    assert counted["servers"] == counted["notify_channels"] == counted["notify_routes"] == "1"
    assert counted["notify_silences"] == counted["customers"] == counted["contracts"] == "1"
    assert int(counted["users"]) == 2  # the partner's service account and the person
    assert _tables(pg_url) == set(), "a dry run writes nothing"

    done = _migrate("--from", source, "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert "copied and counted" in done.stdout
    again = _migrate("--from", source, "--to", pg_url)
    assert again.returncode == 1 and "not empty" in again.stderr

    (tmp_path / "collector" / "vigil.db").rename(tmp_path / "old-vigil.db")
    new = Collector(
        tmp_path / "collector", config=config, env={"VIGIL_STORAGE_URL": pg_url}
    ).start()
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
        assert _listed(new) == listed
        assert new.api(key, "/api/v1/contracts") == contracts
        assert sign_in(new, "ops@acme.example", password)[0] == 302, "the password moved"
    finally:
        new.kill(signal.SIGTERM)

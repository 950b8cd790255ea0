"""A private PostgreSQL for the tests: Debian's server binaries, ``initdb`` in a temporary
directory, listening on a Unix socket only (no TCP), stopped and removed afterwards.

``VIGIL_TEST_DB=postgresql`` runs the collector tests on it: one server per test session
(per pytest-xdist worker), one fresh database per test, handed to every collector the
test starts (processes and in-process) through ``VIGIL_STORAGE_URL``. Those databases are
copies of one the server migrated once (``CREATE DATABASE ... TEMPLATE``): a copy costs a
tenth of running every migration again, which each collector start did before.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import sqlite3
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.storage import Database, SQLiteDatabase

BACKEND = os.environ.get("VIGIL_TEST_DB", "sqlite")
"""The collector tests' storage backend: ``sqlite`` (default) or ``postgresql``."""


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None:
        raise RuntimeError(
            "PostgreSQL server binaries (Debian postgresql) and runuser are required: "
            "packaging/dev/system-packages.sh installs them"
        )
    return Path(found[-1]).parent


class PrivatePostgres:
    """A running private server; :meth:`new_database` gives a fresh, empty database's URL,
    :meth:`new_migrated_database` a fresh one with the collector's schema."""

    TEMPLATE = "vigil_template"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "sock"
        self._names = itertools.count(1)
        self._template_made = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://vigil@/{database}?host={self.sock}"

    def new_database(self, template: str | None = None) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database :meth:`new_database` made (its files go now, a few at a time,
        not all at the session's end); one still in use is left for the server's removal."""
        import psycopg

        name = urllib.parse.urlsplit(url).path.lstrip("/")
        with contextlib.suppress(psycopg.Error):
            with psycopg.connect(self.url(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def new_migrated_database(self) -> str:
        """A fresh database as a collector leaves it on its first start (every migration
        applied, no rows but ``schema_migrations``'), copied from a template migrated once."""
        if not self._template_made:
            self._make_template()
        return self.new_database(template=self.TEMPLATE)

    def _make_template(self) -> None:
        import psycopg

        from collector.storage.postgres import PgConnection, PostgresDatabase

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.TEMPLATE}"')
        PostgresDatabase(self.url(self.TEMPLATE)).close()
        conn = PgConnection(self.url(self.TEMPLATE))
        try:  # a copy must hold nothing a collector's first start would make its own
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
            ).fetchall()
            for (table,) in tables:
                (rows,) = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                assert rows == 0, f"migrations left {rows} rows in {table}: not a template"
        finally:
            conn.close()
        self._template_made = True


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_pg: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "vigil"],
        check=True,
        capture_output=True,
    )
    opts = f"-c listen_addresses='' -k {sock} -c fsync=off -c max_connections=300"
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log")]
    subprocess.run(
        [*as_pg, *start, "-o", opts, "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PrivatePostgres(base)
    finally:
        subprocess.run(
            [*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def collector_database(path: Path, **sqlite_options: Any) -> Database:
    """The database a test opens in-process: the test's PostgreSQL database when the
    suite runs on PostgreSQL (``VIGIL_STORAGE_URL``), else SQLite at ``path``."""
    url = os.environ.get("VIGIL_STORAGE_URL")
    if url:
        from collector.storage.postgres import PostgresDatabase

        return PostgresDatabase(url)
    return SQLiteDatabase(path, **sqlite_options)


def empty_collector_database(path: Path, **sqlite_options: Any) -> Database:
    """:func:`collector_database`, emptied first: on PostgreSQL the test's database is
    dropped and made again (for a test that makes a fresh database per example); on
    SQLite ``path`` must be a new file."""
    if os.environ.get("VIGIL_STORAGE_URL"):
        drop_collector_database(path.parent)
    return collector_database(path, **sqlite_options)


@contextlib.contextmanager
def collector_sql(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A connection of the test's own to a collector's database, in autocommit, taking
    ``?`` placeholders on either backend (to count what was stored, or to corrupt it);
    ``env`` is the collector's own environment, if it was given one."""
    url = (env or {}).get("VIGIL_STORAGE_URL") or os.environ.get("VIGIL_STORAGE_URL")
    if url:
        from collector.storage.postgres import PgConnection

        conn: Any = PgConnection(url)
    else:
        conn = sqlite3.connect(data_dir / "vigil.db", timeout=30, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def database_text(data_dir: Path) -> bytes:
    """Every row of a PostgreSQL collector database as text (what a dump would hold), for
    tests that search a collector's data for a secret; empty on SQLite, whose database is
    a file in ``data_dir`` already."""
    if not os.environ.get("VIGIL_STORAGE_URL"):
        return b""
    with collector_sql(data_dir) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        rows = [
            conn.execute(f'SELECT CAST(t AS TEXT) FROM "{name}" t').fetchall() for (name,) in tables
        ]
    return "\n".join(r[0] for part in rows for r in part).encode()


def drop_collector_database(data_dir: Path) -> None:
    """Throw a stopped collector's database away (the next start makes an empty one)."""
    if os.environ.get("VIGIL_STORAGE_URL"):
        with collector_sql(data_dir) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return
    for f in data_dir.glob("vigil.db*"):
        f.unlink()


def own_database_env(server: PrivatePostgres | None) -> dict[str, str]:
    """The environment for a second collector in one test that must not share the first
    one's database (on SQLite its own data directory is enough)."""
    return {"VIGIL_STORAGE_URL": server.new_migrated_database()} if server is not None else {}

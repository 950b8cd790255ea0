"""A real collector with a server enrolled on it by ``vigil-agent enroll``, and the agent's
own backup runner and ``CollectorClient`` speaking for that server: the backup tests' site.

The agent enrolls with the address of a ``CuttingProxy`` in front of the collector, so a
test can cut one of its connections in the middle of a chunk. What the collector stored is
read as the partner reads it (its API), the runs it recorded from its database; what the
agent sent is what its client recorded on the way out. Tests that play a compromised
collector edit its data directory, as whoever holds that disk could.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from agent.agent_key import AgentKey
from agent.backup.config import parse_backup_config
from agent.backup.runner import BackupRunner
from agent.cli import main as vigil_agent
from agent.client import CollectorClient, Response
from agent.identity import load_identity
from collector import secrets_store
from collector.accounts import partners
from collector.backups import catalog, promise
from collector.backups.policy import BackupPolicy
from collector.config import load_config
from collector.storage import open_database
from harness.database import collector_sql
from harness.net import http
from harness.processes import Agent, Collector, Partner
from harness.proxy import CuttingProxy
from protocol import backup_envelope
from protocol.messages import AgentSettings

T = TypeVar("T")

CHUNK = 64 * 1024
CONFIG = f'[backup]\nchunk_size = "{CHUNK // 1024}KiB"\n'


@dataclass
class Sent:
    """One request the agent's client made: a PUT's offset and body size, the answer's
    status (None: the connection failed)."""

    method: str
    path: str
    offset: int | None
    size: int
    status: int | None


@dataclass
class RecordingClient(CollectorClient):
    """The agent's ``CollectorClient``, noting each request it makes. Its HTTP session
    belongs to one event loop; a test running several ``asyncio.run`` gets one per loop."""

    sent: list[Sent] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    async def _client(self) -> aiohttp.ClientSession:
        if self._loop is not asyncio.get_running_loop():
            self._http, self._loop = None, asyncio.get_running_loop()
        return await super()._client()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/json",
        params: dict[str, Any] | None = None,
        body_digest: str | None = None,
    ) -> Response:
        offset = int(params["offset"]) if params and "offset" in params else None
        note = Sent(method, path, offset, len(body), None)
        self.sent.append(note)
        resp = await super().request(method, path, body, content_type, params, body_digest)
        note.status = resp.status
        return resp

    def puts(self) -> list[Sent]:
        return [s for s in self.sent if s.method == "PUT"]

    def put_bytes(self) -> int:
        """Chunk bytes the collector acknowledged."""
        return sum(s.size for s in self.puts() if s.status == 200)


@dataclass
class BackupSite:
    collector: Collector
    proxy: CuttingProxy
    partner: Partner
    agent: Agent
    server_id: str
    key: AgentKey
    clients: list[RecordingClient] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)

    @property
    def public_key(self) -> bytes:
        return self.key.public_bytes_raw()

    # --- the agent side ------------------------------------------------------------------

    def set_recipients(self, recipients: list[str], *, extra: tuple[str, ...] = ()) -> None:
        """Make the partner's recipients on the collector exactly these (``extra``: added
        as further recipients, not recovery keys), as ``recovery-key add|remove`` does."""
        wanted = {**{r: "recovery" for r in recipients}, **{r: "extra" for r in extra}}

        def change(conn: Any) -> None:
            pid = partners.id_by_name(conn, self.partner.name)
            assert pid is not None
            for r in self.recipients:
                if r not in wanted:
                    catalog.remove_recipient(conn, pid, r)
            for r, role in wanted.items():
                catalog.add_recipient(conn, pid, r, role, "", time.time())

        write(self.collector.data_dir, change)
        self.recipients = list(wanted)

    def another_server(self, root: Path) -> BackupSite:
        """A second server of the same partner, enrolled on the same collector."""
        other = enrolled(root, self.collector, self.proxy, self.partner)
        other.recipients = self.recipients
        return other

    def client(self, url: str | None = None) -> RecordingClient:
        c = RecordingClient(url or self.proxy.url, self.server_id, self.key)
        self.clients.append(c)
        return c

    def runner(
        self,
        state_dir: Path,
        backup_table: dict[str, Any],
        recipients: list[str] | None = None,
        *,
        streaming: bool = False,
    ) -> tuple[BackupRunner, RecordingClient]:
        """The agent's runner on ``state_dir`` with its own client, its session open (the
        collector's settings taken). ``recipients``: the partner's recovery keys set to
        these first. ``streaming``: whether the agent streams while it archives (this
        collector offers it; the tests of the other path turn it down)."""
        if recipients is not None and recipients != self.recipients:
            self.set_recipients(recipients)
        client = self.client()
        runner = BackupRunner(
            parse_backup_config(backup_table, "test.toml"),
            state_dir,
            self.key,
            self.server_id,
            client,
        )

        def take(s: AgentSettings) -> None:
            runner.apply(msgspec.structs.replace(s, backup_streaming=streaming))

        client.on_settings = take
        runner.retry_delays = (0.0, 0.0)
        self.run(client.open_session())
        return runner, client

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` in a new event loop; the clients' HTTP sessions closed after it."""

        async def go() -> Any:
            try:
                return await coro
            finally:
                for c in self.clients:
                    if c._loop is asyncio.get_running_loop():
                        await c.close()

        return asyncio.run(go())

    # --- what the collector holds --------------------------------------------------------

    def api(self, path: str) -> tuple[int, bytes]:
        status, _, body = http(
            "GET",
            self.collector.url + path,
            headers={"Authorization": f"Bearer {self.partner.api_key}"},
        )
        return status, body

    def backups(self) -> list[dict[str, Any]]:
        """The server's stored backups as the partner lists them, oldest first."""
        status, body = self.api(f"/api/v1/servers/{self.server_id}/backups")
        assert status == 200, body
        return sorted(json.loads(body)["backups"], key=lambda b: b["seq"])

    def header(self, backup: dict[str, Any]) -> backup_envelope.BackupHeader:
        status, body = self.api(f"/api/v1/servers/{self.server_id}/backups/{backup['id']}/envelope")
        assert status == 200, body
        return backup_envelope.verify(backup_envelope.decode(body), self.public_key)

    def object(self, backup: dict[str, Any]) -> bytes:
        status, body = self.api(f"/api/v1/servers/{self.server_id}/backups/{backup['id']}/object")
        assert status == 200, body
        return body

    def runs(self) -> list[dict[str, Any]]:
        """The backup runs the collector recorded for the server, in the order received."""
        rows = self.sql(
            "SELECT outcome, reason, seq FROM backup_runs WHERE server_id = ? ORDER BY rowid",
            (self.server_id,),
        )
        return [{"outcome": r[0], "reason": r[1], "seq": r[2]} for r in rows]

    def open_uploads(self) -> int:
        return int(
            self.sql("SELECT COUNT(*) FROM backup_uploads WHERE server_id = ?", (self.server_id,))[
                0
            ][0]
        )

    # --- a compromised collector: its data directory edited ---------------------------

    def row(self, backup_id: str) -> dict[str, Any]:
        cols = [c[1] for c in self.sql("PRAGMA table_info(backups)")]
        [values] = self.sql("SELECT * FROM backups WHERE id = ?", (backup_id,))
        return dict(zip(cols, values, strict=True))

    def insert_backup(self, row: dict[str, Any]) -> None:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.sql(f"INSERT INTO backups ({names}) VALUES ({marks})", tuple(row.values()))

    def hide(self, backup_id: str) -> dict[str, Any]:
        """Take a backup's row away (``insert_backup`` puts it back)."""
        row = self.row(backup_id)
        self.sql("DELETE FROM backups WHERE id = ?", (backup_id,))
        return row

    def set_envelope(self, backup_id: str, envelope: bytes) -> None:
        self.sql("UPDATE backups SET envelope = ? WHERE id = ?", (envelope.decode(), backup_id))

    def object_file(self, backup_id: str) -> Path:
        """The stored object's file (the default local store)."""
        key = self.row(backup_id)["object_key"]
        return self.collector.data_dir / "backups" / key

    def offer_key(self, public_key: bytes) -> None:
        """The collector says this is the server's key."""
        self.sql("UPDATE servers SET public_key = ? WHERE id = ?", (public_key, self.server_id))

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement on the collector's database (another connection, as an intruder
        on its disk would have): the rows it returns."""
        with collector_sql(self.collector.data_dir, self.collector.env) as conn:
            return [tuple(r) for r in conn.execute(statement, params).fetchall()]


def write(data_dir: Path, change: Callable[[Any], T]) -> T:
    """One write transaction on the collector's database from this process (quicker than
    the admin command's process, and the same functions)."""
    db = open_database(load_config(None, data_dir))
    try:
        return db.write_sync(change)
    finally:
        db.close()


def open_site(
    tmp_path: Path,
    make_collector: Callable[..., Collector],
    proxy_for: Callable[[int], CuttingProxy],
) -> BackupSite:
    """A collector with a partner ("acme", a daily backup policy) and a server enrolled
    through a proxy in front of it."""
    data = tmp_path / "collector"

    def prepare(conn: Any) -> Partner:
        p = secrets_store.add_partner(conn, "acme")
        token = secrets_store.create_token(conn, p.id, 10, 3600)
        key = secrets_store.create_api_key(conn, p.id)
        promise.store_policy(
            conn, "partner", str(p.id), BackupPolicy(interval_s=86400), time.time()
        )
        return Partner(p.name, key, token)

    partner = write(data, prepare)
    collector = make_collector(CONFIG, data_dir=data)
    return enrolled(tmp_path / "agent", collector, proxy_for(collector.port), partner)


def enrolled(root: Path, collector: Collector, proxy: CuttingProxy, partner: Partner) -> BackupSite:
    """A server of ``partner`` enrolled by ``vigil-agent enroll`` (its code, in this
    process: one interpreter less per test) through ``proxy``."""
    agent = Agent(root)
    args = ["--collector", proxy.url, "--token", partner.token, "--config", str(agent.config)]
    assert vigil_agent(["enroll", *args]) == 0
    loaded = load_identity(agent.state_dir)
    assert loaded is not None
    return BackupSite(collector, proxy, partner, agent, loaded[0].server_id, loaded[1])

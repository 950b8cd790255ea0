"""Fixtures for the backup tests: stores (local and S3 on loopback), a migrated database
with enrolled servers, signed envelopes; a source tree with every oddity, a partner's key
file, and a site (a real collector, a server enrolled on it through a cutting proxy)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.backups.objectstore import LocalObjectStore, S3ObjectStore, open_object_store
from collector.storage import Database
from harness.database import collector_database
from harness.s3 import moto_server, new_bucket, s3_config
from protocol import backup_envelope as be
from recovery.cli import main as vigil_backup
from tests.backups.backup_site import BackupSite, open_site


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1, a free port, for the whole session."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """The ``[backup.storage]`` table of each kind (the same tests run against both)."""
    if request.param == "local":
        return {"kind": "local", "path": str(tmp_path / "objects")}
    endpoint = request.getfixturevalue("moto_endpoint")
    return s3_config(
        endpoint, new_bucket(endpoint), multipart_chunksize="5MiB", multipart_threshold="8MiB"
    )


@pytest.fixture
def store(store_config: dict, tmp_path: Path) -> LocalObjectStore | S3ObjectStore:
    return open_object_store(store_config, tmp_path)  # type: ignore[return-value]


# --- database and agents ------------------------------------------------------------------


@dataclass
class Agent:
    server_id: str
    partner_id: int
    key: Ed25519PrivateKey
    public_key: bytes
    seq: int = 0
    made: list[str] = field(default_factory=list)

    def envelope(
        self,
        data: bytes = b"",
        *,
        seq: int | None = None,
        kind: str = "full",
        base_seq: int | None = None,
        server_id: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
        created_at: float | None = None,
        signer: Ed25519PrivateKey | None = None,
    ) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        else:
            self.seq = max(self.seq, seq)
        header = be.BackupHeader(
            kind=kind,  # type: ignore[arg-type]
            server_id=server_id or self.server_id,
            seq=seq,
            created_at=time.time() if created_at is None else created_at,
            ciphertext_sha256=None
            if kind == "unchanged"
            else (sha256 or hashlib.sha256(data).hexdigest()),
            ciphertext_size=None if kind == "unchanged" else (len(data) if size is None else size),
            content_digest="ab" * 32,
            base_seq=base_seq,
            recipients=["age1examplerecipient"],
        )
        return be.encode(be.sign(header, signer or self.key))


@dataclass
class Fleet:
    db: Database
    data_dir: Path
    agents: dict[str, Agent]


def add_server(db: Database, partner: str, server_id: str) -> Agent:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    now = time.time()

    def ins(c):
        row = c.execute("SELECT id FROM partners WHERE name = ?", (partner,)).fetchone()
        if row is None:
            c.execute("INSERT INTO partners (name, created_at) VALUES (?, ?)", (partner, now))
            row = c.execute("SELECT id FROM partners WHERE name = ?", (partner,)).fetchone()
        c.execute(
            "INSERT INTO servers (id, partner_id, hostname, machine_id, public_key, enrolled_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (server_id, row[0], f"host-{server_id}", f"m-{server_id}", pub, now - 3600),
        )
        return int(row[0])

    pid = db.write_sync(ins)
    return Agent(server_id, pid, key, pub)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    data = tmp_path / "data"
    data.mkdir()
    db = collector_database(data / "vigil.db", synchronous="NORMAL")
    agents = {
        "srv-a": add_server(db, "acme", "srv-a"),
        "srv-b": add_server(db, "acme", "srv-b"),
        "srv-c": add_server(db, "other", "srv-c"),
    }
    yield Fleet(db, data, agents)
    db.close()


# --- the agent side: a source tree, a key file, an enrolled server ---------------------


@pytest.fixture
def site(tmp_path: Path, make_collector, make_proxy) -> BackupSite:
    return open_site(tmp_path, make_collector, make_proxy)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree with odd names, empty files, a 20 MB sparse-ish file, symlinks, permissions."""
    root = tmp_path / "src" / "etc" / "vms"
    (root / "sub dir" / "ünïcödé").mkdir(parents=True)
    (root / "private").mkdir()
    (root / "agent.toml").write_text("[agent]\nname = 'x'\n")
    (root / "empty").write_bytes(b"")
    (root / "sub dir" / "with space.conf").write_text("a = 1\n")
    (root / "sub dir" / "ünïcödé" / "日本語 ファイル.xml").write_text("<x/>\n")
    (root / "new\nline").write_text("newline in the name\n")
    (root / "private" / "secret.key").write_bytes(os.urandom(64))
    with open(root / "export.db", "wb") as f:
        f.write(b"HEAD" + os.urandom(4096))
        f.seek(20 * 1024 * 1024)
        f.write(b"TAIL")
    os.symlink("agent.toml", root / "current")
    os.symlink("../ünïcödé", root / "sub dir" / "ünïcödé" / "self-up")
    os.symlink("missing-target", root / "dangling")
    os.chmod(root / "private", 0o700)
    os.chmod(root / "private" / "secret.key", 0o600)
    os.chmod(root / "agent.toml", 0o640)
    os.chmod(root / "sub dir", 0o2775)
    os.utime(root / "agent.toml", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    if os.geteuid() == 0:
        os.chown(root / "sub dir" / "with space.conf", 1234, 5678)
    return tmp_path / "src"


@pytest.fixture
def keyfile(tmp_path: Path, capsys) -> tuple[Path, str]:
    """A partner key file made by ``vigil-backup keygen``: (path, age1… recipient)."""
    path = tmp_path / "recovery.key"
    assert vigil_backup(["keygen", "--out", str(path)]) == 0
    recipient = capsys.readouterr().out.strip().splitlines()[-1]
    return path, recipient

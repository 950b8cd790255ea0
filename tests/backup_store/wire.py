"""A real collector process on 127.0.0.1 with the backup routes, and enrolled agents.

Until the app factory calls ``collector.backups.handlers.setup`` itself, the
launcher adds the routes; once it does, the launcher changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.client import CollectorClient, enroll
from collector import secrets_store
from collector.storage import SQLiteDatabase
from protocol.messages import EnrollRequest
from protocol.version import PROTOCOL_VERSION

LAUNCHER = r"""
import logging, sys
import collector.http.app as app_mod
import collector.server as server_mod
from collector.backups.handlers import setup
from collector.config import load_config

_orig = app_mod.create_app

def create_app(config, database=None):
    app = _orig(config, database)
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    if "/api/v1/agent/backups" not in paths:
        setup(app)
    return app

server_mod.create_app = create_app
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
server_mod.run(load_config(sys.argv[1], sys.argv[2], "127.0.0.1:0"))
"""

_LISTEN = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class CollectorProcess:
    def __init__(self, config: Path, data: Path) -> None:
        self.config, self.data = config, data
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = data.parent / "collector.log"

    def _ports(self) -> list[str]:
        return _LISTEN.findall(self.log.read_text(errors="replace")) if self.log.exists() else []

    def start(self) -> CollectorProcess:
        before = len(self._ports())
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(self.config), str(self.data)],
                stdout=logf,
                stderr=logf,
                cwd=Path(__file__).resolve().parents[2],
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ports = self._ports()
            if len(ports) > before:
                self.url = f"http://127.0.0.1:{ports[before]}"
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("collector exited:\n" + self.log.read_text()[-3000:])
            time.sleep(0.05)
        raise RuntimeError("collector did not start:\n" + self.log.read_text()[-3000:])

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class WireAgent:
    server_id: str
    key: Ed25519PrivateKey
    public_key: bytes

    def client(self, url: str, **kw: object) -> CollectorClient:
        return CollectorClient(url, self.server_id, self.key, **kw)  # type: ignore[arg-type]


@dataclass
class Partner:
    id: int
    name: str
    api_key: str
    token: str


def add_partner(data: Path, name: str) -> Partner:
    db = SQLiteDatabase(data / "vigil.db")
    try:
        p = db.write_sync(lambda c: secrets_store.add_partner(c, name))
        token = db.write_sync(lambda c: secrets_store.create_token(c, p.id, 10, 3600))
        key = db.write_sync(lambda c: secrets_store.create_api_key(c, p.id))
    finally:
        db.close()
    return Partner(p.id, name, key, token)


def enroll_agent(url: str, partner: Partner, hostname: str) -> WireAgent:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    req = EnrollRequest(
        protocol=PROTOCOL_VERSION,
        token=partner.token,
        public_key=base64.b64encode(pub).decode(),
        hostname=hostname,
        machine_id=f"machine-{hostname}",
    )
    resp = asyncio.run(enroll(url, req))
    return WireAgent(resp.server_id, key, pub)

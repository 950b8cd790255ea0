"""What the partner's tool remembers about each server, outside the collector's reach.

A backup is trusted because the server's agent signed it; the collector only stores it.
So ``vigil-backup`` must not take the agent's public key from the collector each time (a
collector that lies would hand over its own key along with a forged backup). The key is
pinned here on first use, or explicitly with ``vigil-backup trust``; a different key
offered later is refused until the partner accepts it. The highest backup sequence seen
per server is kept too, so a collector that hides newer backups cannot make "latest" an
older one unnoticed.

File: ``--known-servers FILE``, else ``$VIGIL_KNOWN_SERVERS``, else
``$XDG_CONFIG_HOME/vigil/known_servers`` (``~/.config/vigil/known_servers``); JSON, mode 0600,
replaced atomically::

    {"version": 1, "servers": {"<server id>": {"public_key": "<base64>",
     "fingerprint": "<64 hex>", "pinned_at": 1764000000.0, "highest_seq": 12,
     "retired": ["<base64>", ...]}}}

``retired`` keys are earlier ones the partner replaced with ``trust``: backups they signed
still verify.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from protocol.recipient_list import fingerprint

FILE_VERSION = 1


class KnownServersError(Exception):
    """The file cannot be read or written, or a key does not match; the message says why."""


@dataclass
class KnownServer:
    public_key: str
    fingerprint: str
    pinned_at: float
    highest_seq: int = 0
    retired: list[str] = field(default_factory=list)

    def keys(self) -> list[bytes]:
        """The pinned key first, then the retired ones."""
        return [base64.b64decode(k) for k in (self.public_key, *self.retired)]


def default_path() -> Path:
    env = os.environ.get("VIGIL_KNOWN_SERVERS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "vigil" / "known_servers"


class KnownServers:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.servers: dict[str, KnownServer] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise KnownServersError(
                f"cannot read the pinned server keys {self.path}: {exc}"
            ) from None
        try:
            if data.get("version") != FILE_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            for sid, rec in data["servers"].items():
                ks = KnownServer(
                    public_key=str(rec["public_key"]),
                    fingerprint=str(rec["fingerprint"]),
                    pinned_at=float(rec["pinned_at"]),
                    highest_seq=int(rec.get("highest_seq", 0)),
                    retired=[str(k) for k in rec.get("retired", [])],
                )
                raw = base64.b64decode(ks.public_key, validate=True)
                if fingerprint(raw) != ks.fingerprint:
                    raise ValueError(f"server {sid}: fingerprint does not match its key")
                self.servers[str(sid)] = ks
        except (AttributeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise KnownServersError(
                f"the pinned server keys file {self.path} is damaged ({exc}); fix or move it "
                "(every server is then trusted again on first use)"
            ) from None

    def save(self) -> None:
        data = {
            "version": FILE_VERSION,
            "servers": {sid: asdict(ks) for sid, ks in sorted(self.servers.items())},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(data, indent=2) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise KnownServersError(f"cannot write {self.path}: {exc}") from None

    def get(self, server: str) -> KnownServer | None:
        return self.servers.get(server)

    def pin(self, server: str, public_key: bytes) -> KnownServer:
        """Pin ``public_key`` for ``server`` (a replaced key is kept as retired)."""
        old = self.servers.get(server)
        b64 = base64.b64encode(public_key).decode()
        retired = []
        highest = 0
        if old is not None:
            highest = old.highest_seq
            retired = [k for k in (old.public_key, *old.retired) if k != b64]
        ks = KnownServer(b64, fingerprint(public_key), time.time(), highest, retired)
        self.servers[server] = ks
        return ks

    def changed_key_message(self, server: str, offered: bytes) -> str:
        ks = self.servers[server]
        new = fingerprint(offered)
        return (
            f"server {server}: its signing key changed: pinned fingerprint {ks.fingerprint}, "
            f"the collector offers {new}. Refusing: a collector cannot be trusted to vouch "
            "for the key that signs the backups. If the server was legitimately enrolled "
            "again, check the new fingerprint on the server ('vigil-agent status', line "
            f"'signing key') and accept it with: vigil-backup trust --server {server} "
            f"--fingerprint {new} (pinned keys: {self.path})"
        )

    def saw_seq(self, server: str, seq: int) -> None:
        ks = self.servers.get(server)
        if ks is not None and seq > ks.highest_seq:
            ks.highest_seq = seq

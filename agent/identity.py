"""The agent's identity: its Ed25519 key and enrollment, in a directory only it can read.

``state_dir`` is mode 0700; ``agent.key`` (PKCS#8 PEM) and ``identity.json`` are 0600.
Files are written whole (temporary file, fsync, rename) so a kill -9 never leaves half
an identity.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent import platform
from agent.agent_key import AgentKey

KEY_FILE = "agent.key"
IDENTITY_FILE = "identity.json"


class StateDirError(RuntimeError):
    pass


def ensure_state_dir(path: Path) -> None:
    """Create the state directory 0700, or refuse one others can read or write."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except PermissionError:
        raise StateDirError(
            f"cannot create the state directory {path}: permission denied"
        ) from None
    st = path.stat()
    if not platform.owned_by_me(st):
        raise StateDirError(
            f"state directory {path} belongs to {platform.owner_of(st)}, not to this user"
        )
    if platform.open_to_others(st):
        platform.make_private(path, directory=True)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` whole or not at all. A nearly full disk makes
    ``write`` return short: every byte is written (or ``OSError`` raised), the size is
    checked after ``fsync``, and on any failure the temporary file is removed."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.ENOSPC, f"cannot write {tmp}: nothing written")
                view = view[n:]
            os.fsync(fd)
            size = os.fstat(fd).st_size
            if size != len(data):
                raise OSError(errno.EIO, f"{tmp} holds {size} of {len(data)} bytes")
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass(frozen=True)
class Identity:
    server_id: str
    collector_url: str
    partner: str
    enrolled_at: float
    public_key: str


def load_identity(state_dir: Path) -> tuple[Identity, AgentKey] | None:
    """The enrolled identity, or None if the agent is not enrolled."""
    ipath = state_dir / IDENTITY_FILE
    kpath = state_dir / KEY_FILE
    if not ipath.exists():
        return None
    data: dict[str, Any] = json.loads(ipath.read_text())
    try:
        key = AgentKey.from_pem(kpath.read_bytes())
    except ValueError as exc:
        raise StateDirError(f"{kpath} is not an Ed25519 private key: {exc}") from None
    return Identity(**{k: data[k] for k in Identity.__dataclass_fields__}), key


def save_identity(state_dir: Path, identity: Identity, key: AgentKey) -> None:
    pem = key.to_pem()
    write_atomic(state_dir / KEY_FILE, pem)
    write_atomic(state_dir / IDENTITY_FILE, json.dumps(asdict(identity), indent=2).encode())


def insecure_files(state_dir: Path) -> list[str]:
    """Files of the identity that others could read (the doctor reports them)."""
    bad = []
    for name in (KEY_FILE, IDENTITY_FILE):
        p = state_dir / name
        if p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077:
            bad.append(f"{p} is mode {stat.S_IMODE(p.stat().st_mode):04o} (want 0600)")
    if state_dir.exists() and stat.S_IMODE(state_dir.stat().st_mode) & 0o077:
        bad.append(f"{state_dir} is mode {stat.S_IMODE(state_dir.stat().st_mode):04o} (want 0700)")
    return bad


def machine_id(state_dir: Path, configured: str | None = None) -> str:
    """A stable identity of this machine: configured, else systemd's machine-id, else DMI's
    product UUID (hashed), else one made once and kept in the state directory."""
    if configured:
        return configured
    for candidate in platform.MACHINE_ID_FILES:
        try:
            text = Path(candidate).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    try:
        dmi = Path(platform.HARDWARE_ID_FILE).read_text().strip()
        if dmi:
            return hashlib.sha256(dmi.encode()).hexdigest()[:32]
    except OSError:
        pass
    kept = state_dir / "machine-id"
    if kept.exists():
        return kept.read_text().strip()
    made = uuid.uuid4().hex
    write_atomic(kept, made.encode())
    return made


def hostname(configured: str | None = None) -> str:
    return configured or socket.gethostname()

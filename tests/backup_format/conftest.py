"""Fixtures for the backup tests: a source tree with every oddity, a partner's key file,
and a site (a real collector, a server enrolled on it through a cutting proxy)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recovery.cli import main as vigil_backup
from tests.backup_format.backup_site import BackupSite, open_site


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

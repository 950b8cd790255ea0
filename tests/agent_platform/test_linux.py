"""The agent's Linux platform side: paths, the service notification, disks, and what an
unprivileged agent can read of its backup paths (``doctor`` names each entry it cannot
read and the grant to ask for), run as a real unprivileged user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent import platform
from agent.platform import linux
from harness.processes import BIN
from tests.machine import lacking

NOBODY = 65534


def test_the_package_picks_the_linux_side() -> None:
    assert platform.mounts is linux.mounts
    assert platform.DEFAULT_CONFIG == Path("/etc/vigil/agent.toml")
    assert platform.DEFAULT_STATE_DIR == Path("/var/lib/vigil-agent")


def test_mounts_are_those_psutil_sees_once_each() -> None:
    found = platform.mounts(ignore_fstypes=("tmpfs",))
    points = [m.mountpoint for m in found]
    assert len(points) == len(set(points))
    assert all(m.fstype != "tmpfs" for m in found)
    expected = {p.mountpoint for p in psutil.disk_partitions(all=False) if p.fstype != "tmpfs"}
    assert set(points) == expected


def test_notify_service_sends_the_state_to_the_socket(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert platform.notify_service("RELOADING=1")
        assert server.recv(100) == b"RELOADING=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert platform.notify_service("READY=1") is False


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's own is root's, mode 0700)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        lacking("needs root and setpriv to run doctor as another user")
    d = Path(tempfile.mkdtemp(prefix="vigil-doctor-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def _doctor_as_nobody(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            str(BIN / "vigil-agent"),
            "doctor",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": "/"},
    )


def test_doctor_names_each_unreadable_backup_path_and_the_grant(shared_dir: Path) -> None:
    # Every mode is set explicitly: the test must not depend on the umask the test
    # process happens to run under (a collector command run in-process sets a private one).
    ok = shared_dir / "readable"
    ok.mkdir()
    ok.chmod(0o755)
    (ok / "recorder.conf").write_text("x")
    (ok / "recorder.conf").chmod(0o644)
    closed = shared_dir / "closed"
    (closed / "cams").mkdir(parents=True)
    closed.chmod(0o755)
    (closed / "open.conf").write_text("x")
    (closed / "open.conf").chmod(0o644)
    (closed / "secret.conf").write_text("x")
    (closed / "secret.conf").chmod(0o600)
    (closed / "cams").chmod(0o700)
    by_group = shared_dir / "by-group"
    by_group.mkdir()
    by_group.chmod(0o755)
    (by_group / "db.conf").write_text("x")
    (by_group / "db.conf").chmod(0o640)
    os.chown(by_group / "db.conf", 0, 4)  # group adm (4) may read it
    config = shared_dir / "agent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{shared_dir / "state"}"\n'
        f'[backup]\npaths = ["{ok}", "{closed}", "{by_group}", "{shared_dir}/nothing-*"]\n'
    )
    config.chmod(0o644)
    out = _doctor_as_nobody(config)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = [x for x in out.stdout.splitlines() if "backup path" in x]
    assert any(x.startswith("[ok  ]") and f"{ok}: readable by nobody" in x for x in lines)
    closed_line = next(x for x in lines if str(closed) in x)
    assert closed_line.startswith("[FAIL]")
    assert f"{closed / 'cams'} (directory 0700 root:root)" in closed_line
    assert f"{closed / 'secret.conf'} (file 0600 root:root)" in closed_line
    assert str(closed / "open.conf") not in closed_line
    assert f"setfacl -R -m u:nobody:rX {closed}" in closed_line
    group_line = next(x for x in lines if str(by_group) in x)
    assert "usermod -aG adm nobody" in group_line
    assert any("matches nothing" in x and x.startswith("[warn]") for x in lines)


def test_grant_hint_prefers_a_group_that_can_already_read() -> None:
    by_group = [linux.Unreadable(Path("/srv/a"), "file 0640 root:vms", "vms")]
    assert platform.grant_hint(Path("/srv"), by_group, "vigil-agent").startswith(
        "usermod -aG vms vigil-agent"
    )
    mixed = [*by_group, linux.Unreadable(Path("/srv/b"), "file 0600 root:root", None)]
    assert platform.grant_hint(Path("/srv"), mixed, "vigil-agent") == (
        "setfacl -R -m u:vigil-agent:rX /srv && setfacl -R -d -m u:vigil-agent:rX /srv"
    )


def test_lock_is_exclusive_per_open_file_and_seen_by_others(tmp_path: Path) -> None:
    path = tmp_path / "agent.lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    second = os.open(path, os.O_RDWR)
    try:
        assert not platform.lock_is_held(second)
        assert platform.lock_exclusive(first)
        assert not platform.lock_exclusive(second)
        assert platform.lock_is_held(second)
    finally:
        os.close(first)
    try:
        assert not platform.lock_is_held(second), "released when its holder closes it"
    finally:
        os.close(second)

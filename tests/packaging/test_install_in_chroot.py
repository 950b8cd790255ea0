"""The packages installed with dpkg into a fresh Debian root (chroot): the system user, the
permissions, silent enrollment against a real collector on 127.0.0.1, reinstall and upgrade
keeping identity, spool and configuration, a downgrade across a state-format change refused,
remove keeping and purge deleting the state. systemd does not run in the chroot: the units
are enabled there, not started (the unit tests check them); the installed agent is run as
its unit runs it (its user, its command line) around the upgrade, so the collector on
127.0.0.1 (the chroot shares the host's network) records the version it reports."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import stat
from pathlib import Path

import pytest

from harness.net import wait_until
from harness.processes import Collector
from tests.machine import lacking
from tests.packaging.deb_build import Debs
from tests.packaging.debian_root import (
    debian_root,
    dependencies,
    in_root,
    missing_reason,
    repack,
    root_tarball,
    start_in_root,
)

# The first test builds both packages (minutes on a busy machine; cached after that).
pytestmark = pytest.mark.timeout(1500)

STATE = "var/lib/vigil-agent"


@pytest.fixture
def root(debs: Debs, tmp_path: Path):
    reason = missing_reason()
    if reason:
        lacking(reason)
    tarball = root_tarball(dependencies(debs.agent, debs.collector))
    with debian_root(tarball, tmp_path / "root") as r:
        yield r


def _install(root: Path, deb: Path, env: dict[str, str] | None = None, check: bool = True):
    shutil.copy(deb, root / "tmp" / deb.name)
    return in_root(root, "dpkg", "-i", f"/tmp/{deb.name}", env=env, check=check)


def _user(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":")
    return None


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _seed(root: Path, url: str, token: str) -> Path:
    """The seed as an installation script under umask 077 writes it: /etc/vigil made by
    the script before the package exists, mode 0700."""
    seed = root / "etc/vigil/enroll.toml"
    if not seed.parent.exists():
        seed.parent.mkdir(parents=True, mode=0o700)
        seed.parent.chmod(0o700)
    seed.write_text(f'collector = "{url}"\ntoken = "{token}"\n')
    seed.chmod(0o600)
    return seed


def _installed_version(root: Path, pkg: str) -> str:
    return in_root(root, "dpkg-query", "-W", "-f=${Version} ${Status}", pkg).stdout


def _run_agent(root: Path, log: Path, until: object, what: str) -> None:
    """The installed agent as its unit's ExecStart runs it (with ``--report-now``: the
    first report at once, not after its spread delay), as its user, until ``until()``;
    then SIGTERM, and it must stop cleanly. ``setpriv`` executes the agent as that user,
    as systemd's ``User=`` does (``runuser`` would stay its parent and die of the signal)."""
    agent = start_in_root(
        root,
        *("setpriv", "--reuid=vigil-agent", "--regid=vigil-agent", "--init-groups", "--"),
        *("/usr/bin/vigil-agent", "run", "--config", "/etc/vigil/agent.toml", "--report-now"),
        log=log,
    )
    try:
        wait_until(lambda: until() or agent.poll() is not None, 60, what=what)
        assert agent.poll() is None, f"the agent exited ({agent.returncode}): {log.read_text()}"
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
    assert code == 0, log.read_text()


def _reported(collector: Collector, key: str, server_id: str) -> tuple[str, int, int]:
    """What the collector holds of the server: (agent_version, reports received, last seq)."""
    status, body = collector.api(key, f"/api/v1/servers/{server_id}")
    assert status == 200, body
    return body["agent_version"], body["reports_received"], body["last_seq"]


def _spooled(root: Path) -> list[str]:
    return sorted(p.name for p in (root / STATE / "spool").glob("*.json") if p.stem.isdigit())


def test_agent_lifecycle(root: Path, debs: Debs, collector: Collector, tmp_path: Path) -> None:
    key, token = collector.partner("acme")
    seed = _seed(root, collector.url, token)

    # Install with a seed: user, permissions, enrolled as that user, seed deleted.
    out = _install(root, debs.agent)
    assert "enrolled" in out.stdout, out.stdout + out.stderr
    user = _user(root, "vigil-agent")
    assert user is not None, "postinst made the system user"
    uid, gid = int(user[2]), int(user[3])
    assert uid < 1000 and user[5] == f"/{STATE}" and user[6] == "/usr/sbin/nologin"
    st = (root / STATE).stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and (st.st_uid, st.st_gid) == (uid, gid)
    ident = root / STATE / "identity.json"
    assert ident.stat().st_uid == uid and stat.S_IMODE(ident.stat().st_mode) == 0o600
    server_id = json.loads(ident.read_text())["server_id"]
    status, body = collector.api(key, f"/api/v1/servers/{server_id}")
    assert status == 200 and body["status"] == "pending"
    assert not seed.exists(), "the seed is deleted after a successful enrollment"
    assert (root / STATE / "state-format").read_text().strip() == "1"
    cfg = (root / "etc/vigil/agent.toml").stat()
    assert stat.S_IMODE(cfg.st_mode) == 0o640 and cfg.st_gid == gid
    assert stat.S_IMODE((root / "etc/vigil").stat().st_mode) == 0o711, "searchable, not listable"
    readable = in_root(root, "runuser", "-u", "vigil-agent", "--", "cat", "/etc/vigil/agent.toml")
    assert readable.stdout == (root / "etc/vigil/agent.toml").read_text()
    assert (root / "etc/systemd/system/multi-user.target.wants/vigil-agent.service").is_symlink()
    assert in_root(root, "vigil-agent", "--help").stdout.startswith("usage: vigil-agent")
    leaked = in_root(root, "grep", "-rlF", token, "/etc", "/var", "/tmp", check=False)
    assert leaked.stdout == "", f"the token was written to {leaked.stdout}"

    # Run: the installed agent reports its version; then, the collector away, it spools.
    log = tmp_path / "agent.log"
    _run_agent(
        root,
        log,
        lambda: _reported(collector, key, server_id)[1] >= 1,
        "the first report",
    )
    assert _reported(collector, key, server_id)[0] == debs.version
    collector.stop()
    _run_agent(root, log, lambda: _spooled(root), "a report spooled")
    collector.start()
    spooled = _spooled(root)
    received = _reported(collector, key, server_id)[1]

    # Reinstall with a new seed: not enrolled again, the seed is left and named.
    with (root / "etc/vigil/agent.toml").open("a") as f:
        f.write("\n# local change\n")
    before = _snapshot(root / STATE)
    seed = _seed(root, collector.url, token)
    again = _install(root, debs.agent)
    assert "already enrolled" in again.stderr
    assert seed.exists() and _snapshot(root / STATE) == before
    seed.unlink()

    # Upgrade: identity, spool and the changed configuration stay.
    newer = repack(debs.agent, debs.version + "+t1", tmp_path)
    _install(root, newer)
    assert _installed_version(root, "vigil-agent").startswith(debs.version + "+t1 ")
    assert _snapshot(root / STATE) == before
    assert (root / "etc/vigil/agent.toml").read_text().endswith("# local change\n")

    # The upgraded agent sends the spooled report, then its own with the new version.
    last_spooled = int(spooled[-1].removesuffix(".json"))
    _run_agent(
        root,
        log,
        lambda: _reported(collector, key, server_id)[2] > last_spooled,
        "a report after the spooled ones",
    )
    version, now_received, _ = _reported(collector, key, server_id)
    assert version == debs.version + "+t1"
    assert now_received >= received + len(spooled) + 1
    assert not set(spooled) & set(_spooled(root)), "the spooled reports were delivered"
    before = _snapshot(root / STATE)

    # Downgrade across a state-format change: refused before anything is replaced.
    (root / STATE / "state-format").write_text("2\n")
    refused = _install(root, debs.agent, check=False)
    assert refused.returncode != 0
    assert "refusing to install" in refused.stderr and "format 2" in refused.stderr
    assert _installed_version(root, "vigil-agent").startswith(debs.version + "+t1 install ok")
    (root / STATE / "state-format").write_text("1\n")

    # Remove keeps state, configuration and user; purge deletes them.
    in_root(root, "dpkg", "-r", "vigil-agent")
    assert not (root / "opt/vigil/agent").exists() and not (root / "usr/bin/vigil-agent").exists()
    assert _snapshot(root / STATE) == before and _user(root, "vigil-agent") is not None
    assert (root / "etc/vigil/agent.toml").exists()
    in_root(root, "dpkg", "-P", "vigil-agent")
    assert not (root / STATE).exists()
    assert _user(root, "vigil-agent") is None
    assert not (root / "etc/vigil/agent.toml").exists()

    # Again from scratch, enrolled from the environment this time.
    _, token2 = collector.partner("other")
    out = _install(
        root, debs.agent, env={"VIGIL_COLLECTOR": collector.url, "VIGIL_ENROLL_TOKEN": token2}
    )
    assert json.loads((root / STATE / "identity.json").read_text())["partner"] == "other"


def test_agent_seed_others_can_read_stops_the_install(
    root: Path, debs: Debs, collector: Collector
) -> None:
    _, token = collector.partner("acme")
    seed = _seed(root, collector.url, token)
    seed.chmod(0o644)
    out = _install(root, debs.agent, check=False)
    assert out.returncode != 0 and "chmod 600" in out.stderr
    assert not (root / STATE / "identity.json").exists()


def test_agent_without_seed_installs_and_waits(root: Path, debs: Debs) -> None:
    out = _install(root, debs.agent)
    assert "not enrolled yet" in out.stdout
    assert not (root / STATE / "identity.json").exists()
    assert stat.S_IMODE((root / STATE).stat().st_mode) == 0o700


def test_collector_install_and_purge(root: Path, debs: Debs) -> None:
    _install(root, debs.collector)
    user = _user(root, "vigil-collector")
    assert user is not None and user[6] == "/usr/sbin/nologin"
    st = (root / "var/lib/vigil-collector").stat()
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == int(user[2])
    cfg = (root / "etc/vigil/collector.toml").stat()
    assert stat.S_IMODE(cfg.st_mode) == 0o640 and cfg.st_gid == int(user[3])
    assert in_root(root, "vigil-collector", "--help").returncode == 0
    state = root / "var/lib/vigil-collector"
    (state / "vigil.db").write_bytes(b"kept")
    (state / "state-format").write_text("2\n")
    refused = _install(root, debs.collector, check=False)
    assert refused.returncode != 0 and "format 2" in refused.stderr
    (state / "state-format").write_text("1\n")
    in_root(root, "dpkg", "-r", "vigil-collector")
    assert not (root / "opt/vigil/collector").exists()
    assert (state / "vigil.db").read_bytes() == b"kept"
    in_root(root, "dpkg", "-P", "vigil-collector")
    assert not (root / "var/lib/vigil-collector").exists()
    assert _user(root, "vigil-collector") is None

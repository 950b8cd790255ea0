"""The .deb files as a customer's dpkg sees them: names, contents, conffiles, maintainer
scripts, lintian, and the systemd units verified against the package's own files."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.machine import lacking
from tests.packaging.deb_build import Debs

# The first test builds both packages (minutes on a busy machine; cached after that).
pytestmark = pytest.mark.timeout(1500)

PACKAGES = ("agent", "collector")


def _deb(debs: Debs, which: str) -> Path:
    return debs.agent if which == "agent" else debs.collector


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=300).stdout


def _control(deb: Path, tmp_path: Path) -> Path:
    out = tmp_path / "DEBIAN"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(out)], check=True)
    return out


def _unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(text)
    return unit


def test_file_names_follow_version_and_arch(debs: Debs) -> None:
    for pkg in ("vigil-agent", "vigil-collector"):
        deb = debs.agent if pkg == "vigil-agent" else debs.collector
        assert deb.name == f"{pkg}_{debs.version}_{debs.arch}.deb"
        fields = _run("dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture")
        assert fields.split("\n")[:3] == [
            f"Package: {pkg}",
            f"Version: {debs.version}",
            f"Architecture: {debs.arch}",
        ]


@pytest.mark.parametrize("which", PACKAGES)
def test_contents(debs: Debs, which: str) -> None:
    listing = _run("dpkg-deb", "-c", str(_deb(debs, which)))
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    links = {
        line.split()[5].removeprefix("."): line.split()[-1]
        for line in listing.splitlines()
        if line.startswith("l")
    }
    venv = f"/opt/vigil/{which}"
    assert f"{venv}/bin/python" in links or f"{venv}/bin/python" in paths
    assert f"{venv}/bin/vigil-{which}" in paths
    assert links[f"/usr/bin/vigil-{which}"].endswith(f"opt/vigil/{which}/bin/vigil-{which}")
    assert f"/etc/vigil/{which}.toml" in paths
    assert f"/lib/systemd/system/vigil-{which}.service" in paths
    assert f"/usr/share/doc/vigil-{which}/README.md" in paths
    # Bytecode is made on the machine (postinst), never shipped; no build path leaks in.
    assert not [p for p in paths if "__pycache__" in p]
    other = "collector" if which == "agent" else "agent"
    assert not [p for p in paths if p.startswith(f"/opt/vigil/{other}")]
    assert f"/usr/bin/vigil-{other}" not in paths
    site = f"{venv}/lib/python3.11/site-packages"
    collector_only = ("boto3", "botocore", "apprise", "jinja2", "holidays", "psycopg")
    installed = {name for name in collector_only if f"{site}/{name}/__init__.py" in paths}
    if which == "agent":
        # The agent's environment has the agent's libraries only, and no command that
        # would need the others.
        assert not installed, installed
        assert f"{venv}/bin/vigil-collector" not in paths
        assert f"{venv}/bin/vigil-backup" in paths
    else:
        assert installed == set(collector_only)


@pytest.mark.parametrize("which", PACKAGES)
def test_entry_point_uses_its_own_environment(debs: Debs, which: str, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(_deb(debs, which)), str(tmp_path)], check=True)
    script = tmp_path / f"opt/vigil/{which}/bin/vigil-{which}"
    assert script.read_text().splitlines()[0] == f"#!/opt/vigil/{which}/bin/python"
    assert ".cache" not in script.read_text()
    cfg = (tmp_path / f"opt/vigil/{which}/pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.M), cfg


@pytest.mark.parametrize("which", PACKAGES)
def test_configuration_is_a_conffile_from_the_example(
    debs: Debs, which: str, tmp_path: Path
) -> None:
    control = _control(_deb(debs, which), tmp_path)
    assert (control / "conffiles").read_text().split() == [f"/etc/vigil/{which}.toml"]
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(_deb(debs, which)), str(root)], check=True)
    example = Path(__file__).resolve().parents[2] / "packaging" / f"{which}.toml.example"
    assert (root / f"etc/vigil/{which}.toml").read_text() == example.read_text()


@pytest.mark.parametrize("which", PACKAGES)
def test_depends(debs: Debs, which: str) -> None:
    depends = _run("dpkg-deb", "-f", str(_deb(debs, which)), "Depends")
    names = {d.strip().split()[0] for d in depends.split(",")}
    assert {"adduser", "python3.11", "libc6", "procps"} <= names


@pytest.mark.parametrize("which", PACKAGES)
def test_maintainer_scripts(debs: Debs, which: str, tmp_path: Path) -> None:
    control = _control(_deb(debs, which), tmp_path)
    for name in ("preinst", "postinst", "prerm", "postrm"):
        script = control / name
        assert script.stat().st_mode & 0o111, name
        subprocess.run(["sh", "-n", str(script)], check=True)
    user = f"vigil-{which}"
    postinst = (control / "postinst").read_text()
    assert "adduser --system --group" in postinst and user in postinst
    assert f"install -d -m 0700 -o {user} -g {user} /var/lib/{user}" in postinst.replace(
        '"$STATE_DIR"', f"/var/lib/{user}"
    )
    # The generated part enables and starts the unit, after our own steps.
    assert postinst.index("deb-systemd-helper") > postinst.index("adduser --system")
    preinst = (control / "preinst").read_text()
    assert "state-format" in preinst and "refusing to install" in preinst
    fmt = re.search(r"^STATE_FORMAT=(\d+)", preinst, re.M)
    assert fmt and re.search(rf"^STATE_FORMAT={fmt.group(1)}\b", postinst, re.M)
    postrm = (control / "postrm").read_text()
    purge = postrm[postrm.index("purge)") :]
    assert f"rm -rf /var/lib/{user}" in purge and f"deluser --quiet --system {user}" in purge


def test_postinst_never_puts_the_token_in_argv(debs: Debs, tmp_path: Path) -> None:
    postinst = (_control(debs.agent, tmp_path) / "postinst").read_text()
    calls = [
        line
        for line in postinst.splitlines()
        if "vigil-agent enroll" in line and not line.strip().startswith("echo")
    ]
    assert len(calls) == 2, "postinst enrolls the agent from the seed or the environment"
    for line in calls:
        assert "runuser -u vigil-agent" in line
        assert "--token" not in line and "TOKEN" not in line.split("enroll", 1)[1]
    assert '--seed - <"$SEED"' in postinst
    assert 'rm -f "$SEED"' in postinst
    assert '"$STATE_DIR/identity.json"' in postinst  # enrolled: not enrolled again


@pytest.mark.parametrize("which", PACKAGES)
def test_unit_is_hardened(debs: Debs, which: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(_deb(debs, which)), str(root)], check=True)
    unit = _unit((root / f"lib/systemd/system/vigil-{which}.service").read_text())
    svc = unit["Service"]
    user = f"vigil-{which}"
    assert svc["User"] == user and svc["Group"] == user
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["ProtectHome"] in ("yes", "read-only")
    assert svc["PrivateTmp"] == "yes"
    assert svc["CapabilityBoundingSet"] == ""
    assert "AmbientCapabilities" not in svc
    assert svc["ReadWritePaths"] == f"/var/lib/{user}"
    assert svc["StateDirectory"] == user and svc["StateDirectoryMode"] == "0700"
    # on-failure restarts any non-zero exit: the agent's 75 (re-enrolled) and 1 (a task
    # gave up) both; 'always' would also restart a clean stop.
    assert svc["Restart"] == "on-failure"
    assert "75" not in svc.get("RestartPreventExitStatus", "").split()
    assert "1" not in svc.get("RestartPreventExitStatus", "").split()
    assert "SuccessExitStatus" not in svc
    assert int(unit["Unit"]["StartLimitBurst"]) > 0
    assert int(unit["Unit"]["StartLimitIntervalSec"]) > 0
    assert "StandardOutput" not in svc and "StandardError" not in svc  # the journal


@pytest.mark.parametrize("which", PACKAGES)
def test_systemd_analyze_verify_is_clean(debs: Debs, which: str, tmp_path: Path) -> None:
    """Verified inside a root made of the package's files (so ExecStart's program is the
    packaged one) and the host's own systemd units (the targets it refers to)."""
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(_deb(debs, which)), str(root)], check=True)
    host_units = Path("/lib/systemd/system")
    if not (host_units / "multi-user.target").exists():
        lacking("this host has no systemd units to verify against")
    shutil.copytree(host_units, root / "lib/systemd/system", dirs_exist_ok=True, symlinks=True)
    # ExecReload's /bin/kill comes from procps, a dependency of the package.
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2("/bin/kill", root / "bin" / "kill")
    out = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", f"vigil-{which}.service"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "" and out.stderr.strip() == ""


def _lintian(debs: Debs) -> tuple[int, str]:
    """lintian's exit status and output on both packages. Kept beside the cached build,
    keyed by lintian's version: the same files and the same lintian give the same answer,
    and a run takes minutes."""
    version = _run("lintian", "--version").strip()
    cached = debs.agent.parent / "lintian.json"
    if cached.exists():
        saved = json.loads(cached.read_text())
        if saved["version"] == version:
            return saved["status"], saved["output"]
    out = subprocess.run(
        ["lintian", "--no-tag-display-limit", str(debs.agent), str(debs.collector)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = out.stdout + out.stderr
    cached.write_text(json.dumps({"version": version, "status": out.returncode, "output": output}))
    return out.returncode, output


def test_lintian_reports_no_errors(debs: Debs) -> None:
    status, output = _lintian(debs)
    errors = [line for line in output.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors[:50])
    assert status == 0, output[-2000:]

"""Build the two .deb files once per set of inputs: the result is cached under the worktree's
ignored ``.cache/`` keyed by a hash of everything that goes into a package, and a file lock
keeps two test workers from building at the same time."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "debs"
PIP_CACHE = ROOT / ".cache" / "pip"
# What a package is made of; tests and docs outside packaging/ are not.
INPUTS = ("agent", "collector", "protocol", "recovery", "sim", "packaging", "pyproject.toml")
TOOLS = ("dpkg-buildpackage", "dh_virtualenv", "dh", "lintian", "systemd-analyze")


@dataclass(frozen=True)
class Debs:
    version: str
    arch: str
    agent: Path
    collector: Path


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def project_version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in pyproject.toml")


def inputs_hash() -> str:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *INPUTS],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    h = hashlib.sha256()
    for name in sorted(f for f in files if f):
        path = ROOT / name.decode()
        if path.is_file():
            h.update(name + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build(version: str | None = None) -> Debs:
    """The packages for this checkout (``version``: pyproject's, or another for an upgrade)."""
    version = version or project_version()
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = CACHE / f"{inputs_hash()}-{version}"
    debs = Debs(
        version,
        arch,
        out / f"vigil-agent_{version}_{arch}.deb",
        out / f"vigil-collector_{version}_{arch}.deb",
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if debs.agent.exists() and debs.collector.exists():
            return debs
        for old in CACHE.iterdir():  # one cached build per version is enough
            if old.is_dir() and old.name.endswith(f"-{version}"):
                shutil.rmtree(old)
        env = {
            **os.environ,
            "VIGIL_DEB_VERSION": version,
            "VIGIL_DEB_OUT": str(out),
            # Same contents, compressed for speed: xz is most of a release build's time.
            "VIGIL_DEB_COMPRESS": "-Zgzip -z1",
            # One pip cache for both environments and every later build (a release build
            # keeps none): the wheels are downloaded once, not once per environment and build.
            "VIGIL_PIP_CACHE_DIR": str(PIP_CACHE),
        }
        env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
        result = subprocess.run(
            ["bash", str(ROOT / "packaging" / "build-debs.sh")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise AssertionError(f"package build failed:\n{result.stdout[-4000:]}{result.stderr}")
    return debs

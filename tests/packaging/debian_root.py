"""A throwaway Debian root to install the packages into, as on a customer's server: made with
mmdebstrap (variant apt, plus the packages' dependencies so dpkg needs no network), cached as
a tarball under the worktree's ignored ``.cache/``, unpacked fresh for each test. It shares the
host's network namespace, so a collector on 127.0.0.1 outside is reachable from inside."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.packaging.deb_build import CACHE

SUITE = "bookworm"


def missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "installing into a chroot needs root"
    for tool in ("mmdebstrap", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: make package-tools"
    return None


def dependencies(*debs: Path) -> list[str]:
    """Package names the .deb files depend on (versions and alternatives dropped)."""
    names: set[str] = set()
    for deb in debs:
        depends = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
        ).stdout
        for dep in depends.split(","):
            names.add(dep.split("|")[0].strip().split()[0])
    return sorted(n for n in names if n)


def root_tarball(include: list[str]) -> Path:
    key = hashlib.sha256(" ".join([SUITE, *include]).encode()).hexdigest()[:12]
    tarball = CACHE.parent / "debian-root" / f"{SUITE}-{key}.tar"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with open(tarball.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            partial = tarball.with_suffix(".partial.tar")
            subprocess.run(
                [
                    "mmdebstrap",
                    "--quiet",
                    "--variant=apt",
                    f"--include={','.join(include)}",
                    SUITE,
                    str(partial),
                ],
                check=True,
                capture_output=True,
                timeout=900,
            )
            partial.rename(tarball)
    return tarball


@contextlib.contextmanager
def debian_root(tarball: Path, where: Path) -> Iterator[Path]:
    """The root unpacked at ``where``, with /proc and /dev mounted while in use."""
    where.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(where)], check=True)
    mounted: list[Path] = []
    try:
        for kind, target in (("proc", "proc"), ("bind", "dev")):
            path = where / target
            path.mkdir(exist_ok=True)
            if kind == "proc":
                subprocess.run(["mount", "-t", "proc", "proc", str(path)], check=True)
            else:
                subprocess.run(["mount", "--bind", "/dev", str(path)], check=True)
            mounted.append(path)
        yield where
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(path)], check=False)


def _root_env(env: dict[str, str] | None) -> dict[str, str]:
    """A clean, Debian-like environment, with ``env`` added."""
    base = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    return {**base, **(env or {})}


def _hardened_umask() -> None:
    os.umask(0o077)


def in_root(
    root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command inside the root, with a clean, Debian-like environment and the umask
    of a hardened host's root shell (077): the packages must set every mode they need."""
    out = subprocess.run(
        ["chroot", str(root), *args],
        env=_root_env(env),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_hardened_umask,
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out


def start_in_root(root: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running command inside the root as ``in_root`` runs one, its output
    to ``log``: a service as its unit would run it (systemd does not run in the root)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            ["chroot", str(root), *args],
            env=_root_env(None),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_hardened_umask,
        )


def repack(deb: Path, version: str, out_dir: Path) -> Path:
    """The same package under another version: what an upgrade sees. The code is the same;
    the version dpkg compares and the one the installed Python distribution carries (what
    the agent reports) are the new one, as in a build of that version."""
    tree = out_dir / f"tree-{version}"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    _set_field(tree / "DEBIAN" / "control", "Version", version)
    for dist_info in tree.glob("opt/vigil/*/lib/python3*/site-packages/vigil-*.dist-info"):
        _set_field(dist_info / "METADATA", "Version", version)
        dist_info.rename(dist_info.with_name(f"vigil-{version}.dist-info"))
    new = out_dir / deb.name.replace(deb.name.split("_")[1], version)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(tree), str(new)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return new


def _set_field(path: Path, name: str, value: str) -> None:
    """Replace an RFC 822-style header field (control file, Python package metadata)."""
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}: "))
    lines[at] = f"{name}: {value}"
    path.write_text("\n".join(lines) + "\n")

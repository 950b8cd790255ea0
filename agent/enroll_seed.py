"""Where ``vigil-agent enroll`` finds the collector URL and the token when the flags are absent:
the environment (``VIGIL_COLLECTOR``, ``VIGIL_ENROLL_TOKEN``), then a seed file
(``/etc/vigil/enroll.toml``, or standard input). This lets an installation script enroll
a server without the token ever appearing in a command line (the process list) or in a file
others can read."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agent.platform import DEFAULT_SEED

ENV_COLLECTOR = "VIGIL_COLLECTOR"
ENV_TOKEN = "VIGIL_ENROLL_TOKEN"
_KEYS = {"collector", "token"}


class SeedError(ValueError):
    pass


@dataclass(frozen=True)
class EnrollSource:
    collector: str
    token: str
    # The seed file both came from, to delete after a successful enrollment (None: flags,
    # environment or standard input).
    seed_path: Path | None


def _parse(text: str, where: str) -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SeedError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SeedError(f"{where}: unknown key {unknown[0]!r} (expected: collector, token)")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise SeedError(f"{where}: {key} must be a non-empty string")
    return {k: v.strip() for k, v in data.items()}


def read_seed(seed: str | None, stdin: IO[str] | None = None) -> tuple[dict[str, str], Path | None]:
    """The seed's keys and the file they came from. ``seed`` is a path, ``-`` for standard
    input, or None for the default file when it exists. A file others may read is refused:
    the token in it would be exposed."""
    if seed == "-":
        return _parse((stdin or sys.stdin).read(), "standard input"), None
    path = Path(seed) if seed is not None else DEFAULT_SEED
    try:
        st = path.stat()
    except FileNotFoundError:
        if seed is None:
            return {}, None
        raise SeedError(f"seed file {path} does not exist") from None
    except PermissionError:
        raise SeedError(f"cannot read the seed file {path}: permission denied") from None
    if st.st_mode & 0o077:
        raise SeedError(
            f"seed file {path} has mode {stat.S_IMODE(st.st_mode):04o}: the token in it must be "
            "readable by its owner only (chmod 600)"
        )
    try:
        text = path.read_text()
    except PermissionError:
        raise SeedError(f"cannot read the seed file {path}: permission denied") from None
    return _parse(text, str(path)), path


def resolve(
    collector: str | None,
    token: str | None,
    seed: str | None,
    environ: dict[str, str] | None = None,
    stdin: IO[str] | None = None,
) -> EnrollSource:
    """Each value from the flag, else the environment, else the seed (read only when needed)."""
    env = os.environ if environ is None else environ
    collector = collector or env.get(ENV_COLLECTOR) or None
    token = token or env.get(ENV_TOKEN) or None
    seed_path = None
    if collector is None or token is None or seed is not None:
        values, seed_path = read_seed(seed, stdin)
        used = (collector is None and "collector" in values) or (
            token is None and "token" in values
        )
        collector = collector or values.get("collector")
        token = token or values.get("token")
        if not used:
            seed_path = None
    missing = [
        what
        for what, value in (("collector URL", collector), ("enrollment token", token))
        if not value
    ]
    if missing:
        raise SeedError(
            f"no {' and no '.join(missing)}: give --collector URL --token TOKEN, or set "
            f"{ENV_COLLECTOR} and {ENV_TOKEN}, or write them to {DEFAULT_SEED} "
            '(collector = "https://…", token = "vgl_enr_…", mode 0600)'
        )
    assert collector is not None and token is not None
    return EnrollSource(collector, token, seed_path)

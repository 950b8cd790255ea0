"""The agent's ``[backup]`` TOML table, validated into ``BackupSettings``."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

DEFAULT_PRE_COMMAND_TIMEOUT = 600.0
MAX_PRE_COMMAND_TIMEOUT = 24 * 3600.0
MAX_THREADS = 64


def default_threads(cores: int | None = None) -> int:
    """Half the machine's cores, at least 1 and at most 4: the video software recording
    on the same machine keeps the rest."""
    cores = os.cpu_count() if cores is None else cores
    return max(1, min(4, (cores or 1) // 2))


class BackupConfigError(ValueError):
    """A ``[backup]`` key has the wrong type or value; names the key and what it expects."""

    def __init__(self, key: str, expected: str, source: str = "") -> None:
        self.key = key
        self.expected = expected
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}[backup] {key}: expected {expected}")


@dataclass(frozen=True)
class BackupSettings:
    paths: tuple[str, ...] = ()
    """Absolute files, directories (recursive) or globs (``*``, ``?``, ``[…]``, ``**``)."""
    exclude: tuple[str, ...] = ()
    """Glob patterns: with a ``/`` matched against the absolute path, else the file name."""
    pre_command: tuple[str, ...] = ()
    """argv of a command run before each backup (a string in TOML is split like a shell)."""
    pre_command_timeout: float = DEFAULT_PRE_COMMAND_TIMEOUT
    threads: int = field(default_factory=default_threads)
    """The most threads a backup keeps busy at once (reading, compressing, encrypting)."""
    source: str = field(default="", compare=False)

    @property
    def enabled(self) -> bool:
        return bool(self.paths)


def _str_list(table: dict, key: str, source: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BackupConfigError(key, "a list of non-empty strings", source)
    return tuple(value)


def parse_backup_config(table: dict, source: str = "") -> BackupSettings:
    """Validate the ``[backup]`` table (``{}`` when absent = backups have no sources).

    Unknown keys are refused too, so a typo shows up at ``vigil-agent doctor`` time and not
    as a backup that silently leaves something out.
    """
    if not isinstance(table, dict):
        raise BackupConfigError("[backup]", "a table", source)
    known = {"paths", "exclude", "pre_command", "pre_command_timeout", "threads"}
    for key in table:
        if key not in known:
            raise BackupConfigError(str(key), "one of " + ", ".join(sorted(known)), source)
    paths = _str_list(table, "paths", source)
    for p in paths:
        if not p.startswith("/"):
            raise BackupConfigError("paths", f"absolute paths (got {p!r})", source)
        if p.rstrip("/") == "/.vigil" or p.startswith("/.vigil/"):
            raise BackupConfigError("paths", "paths outside /.vigil (reserved in archives)", source)
    exclude = _str_list(table, "exclude", source)
    raw_cmd = table.get("pre_command", [])
    if isinstance(raw_cmd, str):
        try:
            cmd = tuple(shlex.split(raw_cmd))
        except ValueError as exc:
            raise BackupConfigError(
                "pre_command", f"a shell-like command line ({exc})", source
            ) from None
        if not cmd:
            raise BackupConfigError("pre_command", "a non-empty command", source)
    elif isinstance(raw_cmd, list) and all(isinstance(a, str) for a in raw_cmd):
        cmd = tuple(raw_cmd)
    else:
        raise BackupConfigError("pre_command", "a string or a list of strings", source)
    timeout = table.get("pre_command_timeout", DEFAULT_PRE_COMMAND_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise BackupConfigError("pre_command_timeout", "a number of seconds", source)
    if not 0 < timeout <= MAX_PRE_COMMAND_TIMEOUT:
        raise BackupConfigError(
            "pre_command_timeout", f"seconds between 0 and {int(MAX_PRE_COMMAND_TIMEOUT)}", source
        )
    threads = table.get("threads", default_threads())
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise BackupConfigError("threads", "a whole number of threads", source)
    if not 1 <= threads <= MAX_THREADS:
        raise BackupConfigError("threads", f"between 1 and {MAX_THREADS}", source)
    return BackupSettings(
        paths=paths,
        exclude=exclude,
        pre_command=cmd,
        pre_command_timeout=float(timeout),
        threads=threads,
        source=source,
    )

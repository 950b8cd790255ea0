"""The collector's configuration: one TOML file, every key optional, checked at start."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.sizes import parse_bytes

DEFAULT_DATA_DIR = Path("/var/lib/vigil-collector")
DEFAULT_LISTEN = "127.0.0.1:8700"


class ConfigError(ValueError):
    """A bad configuration: names the file, the key and what is expected."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        super().__init__(f"{source}: {key}: expected {expected}")
        self.source, self.key, self.expected = source, key, expected


@dataclass(frozen=True)
class StorageConfig:
    kind: str = "sqlite"
    path: Path = Path()
    sqlite_synchronous: str = "FULL"
    dsn: str = ""


@dataclass(frozen=True)
class CollectorConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    listen: str = DEFAULT_LISTEN
    report_interval_s: int = 60
    offline_after_intervals: int = 3
    history_days: int = 30
    session_ttl_s: int = 3600
    max_clock_skew_s: int = 300
    housekeeping_interval_s: int = 600
    """How often history older than ``history_days`` is pruned."""
    storage_check_interval_s: int = 5
    """How often the storage checks of ``/healthz`` run in the background (writes are
    refused between a failed check and the next good one)."""
    report_reserve: int = 64 * 1024 * 1024
    """Reports (and every other small write) are refused below this much free space in the
    data directory; backup uploads stop earlier, at ``[backup] upload_reserve``."""
    refusal_log_interval_s: int = 600
    """A refused agent is logged once per server and reason in this interval."""
    task_retry_max_s: int = 300
    """Longest wait before a failed background task is run again (the wait doubles from 1 s)."""
    task_give_up_after: int = 10
    """A background task failing this many times in a row stops the collector (exit 1),
    for the service manager to restart it."""
    storage: StorageConfig = field(default_factory=StorageConfig)
    raw: dict[str, Any] = field(default_factory=dict)
    """The whole file, for feature sections (``[backup.storage]``, ``[contracts]``)."""
    source: str = "(defaults)"


def _get(
    table: dict[str, Any], key: str, kind: type, source: str, prefix: str, default: Any
) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(source, f"{prefix}{key}", "an integer")
    if kind is str and not isinstance(value, str):
        raise ConfigError(source, f"{prefix}{key}", "a string")
    return value


def load_config(
    path: str | Path | None = None, data_dir: str | Path | None = None, listen: str | None = None
) -> CollectorConfig:
    """Read ``path`` (if given), then apply the command line's ``--data`` and ``--listen``."""
    raw: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, "(file)", "an existing TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "(syntax)", f"valid TOML ({exc})") from None
    table = raw.get("collector", {})
    if not isinstance(table, dict):
        raise ConfigError(source, "collector", "a table")
    p = "collector."
    data = (
        Path(data_dir)
        if data_dir
        else Path(_get(table, "data_dir", str, source, p, str(DEFAULT_DATA_DIR)))
    )
    cfg_listen = listen or _get(table, "listen", str, source, p, DEFAULT_LISTEN)
    if ":" not in cfg_listen:
        raise ConfigError(source, "collector.listen", "HOST:PORT")
    ints = {}
    for key, default, low in (
        ("report_interval_s", 60, 1),
        ("offline_after_intervals", 3, 1),
        ("history_days", 30, 1),
        ("session_ttl_s", 3600, 60),
        ("max_clock_skew_s", 300, 5),
        ("housekeeping_interval_s", 600, 1),
        ("storage_check_interval_s", 5, 1),
        ("refusal_log_interval_s", 600, 1),
        ("task_retry_max_s", 300, 1),
        ("task_give_up_after", 10, 1),
    ):
        v = _get(table, key, int, source, p, default)
        if v < low:
            raise ConfigError(source, f"collector.{key}", f"an integer >= {low}")
        ints[key] = v
    try:
        ints["report_reserve"] = parse_bytes(table.get("report_reserve", 64 * 1024 * 1024))
    except ValueError:
        raise ConfigError(source, "collector.report_reserve", 'a size (e.g. "64MiB")') from None
    st = raw.get("storage", {})
    if not isinstance(st, dict):
        raise ConfigError(source, "storage", "a table")
    kind = _get(st, "kind", str, source, "storage.", "sqlite")
    if kind not in ("sqlite", "postgresql"):
        raise ConfigError(source, "storage.kind", '"sqlite" or "postgresql"')
    sync = _get(st, "sqlite_synchronous", str, source, "storage.", "FULL").upper()
    if sync not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError(source, "storage.sqlite_synchronous", '"FULL", "NORMAL" or "EXTRA"')
    storage = StorageConfig(
        kind=kind,
        path=Path(_get(st, "path", str, source, "storage.", str(data / "vigil.db"))),
        sqlite_synchronous=sync,
        dsn=_get(st, "dsn", str, source, "storage.", ""),
    )
    return CollectorConfig(
        data_dir=data, listen=cfg_listen, storage=storage, raw=raw, source=source, **ints
    )

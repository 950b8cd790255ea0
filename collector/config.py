"""The collector's configuration: one TOML file, every key optional, checked at start."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.config_keys import refused_key, unread_keys, watched
from collector.sizes import parse_bytes

if TYPE_CHECKING:
    from collector.accounts.mail import MailConfig
    from collector.backups.config import BackupConfig
    from collector.contracts.config import ContractsConfig

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


def _storage_url(url: str, source: str) -> tuple[str, str, str]:
    """(kind, dsn, sqlite path) of a storage URL: ``postgresql://…`` or ``sqlite:///path``."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url, ""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return "sqlite", "", url[len("sqlite://") :]
    raise ConfigError(source, "storage.url", "postgresql://user@host/database or sqlite:///path")


@dataclass(frozen=True)
class RateLimitConfig:
    """How many authentication failures are tolerated before answering 429 (``[rate_limits]``).

    Each source address and each credential (an enrollment token, a server id, an API
    key's prefix) has a bucket of ``*_failures`` that refills over ``window_s``.
    """

    address_failures: int = 30
    credential_failures: int = 10
    window_s: int = 60
    max_tracked: int = 100_000


@dataclass(frozen=True)
class PagesConfig:
    """The browser pages' sign-in (``[pages]``)."""

    session_ttl_s: int = 12 * 3600
    secure_cookies: bool = False
    """Mark cookies Secure even on plain HTTP: for a collector behind a TLS proxy."""


@dataclass(frozen=True)
class CollectorConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    listen: str = DEFAULT_LISTEN
    report_interval_s: int = 60
    offline_after_intervals: int = 3
    history_days: int = 30
    session_ttl_s: int = 3600
    session_cache_s: int = 5
    """An agent session's lookup is kept this many seconds (0: looked up on every
    request); a revoked server is refused within it (``collector.http.session_cache``)."""
    max_clock_skew_s: int = 300
    read_timeout_s: int = 30
    """Headers, and a body's fixed allowance, must arrive within this many seconds."""
    min_body_bytes_per_s: int = 16 * 1024
    """A body may take ``read_timeout_s`` plus its length at this rate, not longer."""
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
    ingest_max_pending: int = 256
    """Report batches this process holds at once (authenticated, not yet committed); one
    more is answered 429 with ``Retry-After`` (``collector.health.ingest_gate``)."""
    ingest_retry_after_s: int = 10
    """The ``Retry-After`` of that 429 (the agent adds jitter on top)."""
    event_loop: str = "uvloop"
    """``[collector] event_loop``: "uvloop" (used when installed, asyncio's own loop
    otherwise) or "asyncio"."""
    storage: StorageConfig = field(default_factory=StorageConfig)
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    pages: PagesConfig = field(default_factory=PagesConfig)
    metrics_token: str = ""
    """When set, ``GET /metrics`` needs ``Authorization: Bearer <token>``."""
    session_key_file: Path | None = None
    """``[http] session_key_file``: the sealing key of agent sessions, shared by every
    collector machine of one installation (unset: ``session.key`` in the data directory)."""
    task_lease_s: int = 30
    """A process holding a scheduled task's lease keeps it this long without renewing;
    after a holder dies, another process takes the task over once its lease expires."""
    backup: BackupConfig = field(default_factory=lambda: _feature_sections({}, "")[0])
    """``[backup]``, checked at load like every other section."""
    contracts: ContractsConfig = field(default_factory=lambda: _feature_sections({}, "")[1])
    """``[contracts]``."""
    mail: MailConfig = field(default_factory=lambda: _feature_sections({}, "")[2])
    """``[mail]``: the collector's own mail (password-reset links)."""
    log_format: str = "text"
    """``[log] format``: "text" (for people), "logfmt" or "json" (for log shippers)."""
    log_level: str = "info"
    """``[log] level``; ``serve --log-level`` wins over it."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The whole file as read."""
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
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(source, f"{prefix}{key}", "true or false")
    return value


def _table(raw: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(source, name, "a table")
    return table


def _bounded_ints(
    table: dict[str, Any], section: str, source: str, specs: tuple[tuple[str, int, int], ...]
) -> dict[str, int]:
    out = {}
    for key, default, low in specs:
        v = _get(table, key, int, source, f"{section}.", default)
        if v < low:
            raise ConfigError(source, f"{section}.{key}", f"an integer >= {low}")
        out[key] = v
    return out


def _security_sections(
    raw: dict[str, Any], source: str
) -> tuple[RateLimitConfig, PagesConfig, str]:
    rl = _bounded_ints(
        _table(raw, "rate_limits", source),
        "rate_limits",
        source,
        (
            ("address_failures", RateLimitConfig.address_failures, 1),
            ("credential_failures", RateLimitConfig.credential_failures, 1),
            ("window_s", RateLimitConfig.window_s, 1),
            ("max_tracked", RateLimitConfig.max_tracked, 100),
        ),
    )
    pg = _table(raw, "pages", source)
    pages = PagesConfig(
        session_ttl_s=_bounded_ints(
            pg, "pages", source, (("session_ttl_s", PagesConfig.session_ttl_s, 1),)
        )["session_ttl_s"],
        secure_cookies=_get(pg, "secure_cookies", bool, source, "pages.", False),
    )
    token = _get(_table(raw, "metrics", source), "token", str, source, "metrics.", "")
    if token and len(token) < 16:
        raise ConfigError(source, "metrics.token", "at least 16 characters (or leave it out)")
    return RateLimitConfig(**rl), pages, token


def _feature_sections(
    raw: dict[str, Any], source: str
) -> tuple[BackupConfig, ContractsConfig, MailConfig]:
    """The features' own tables, each parsed by its feature. Imported here rather than at
    the top: the features' parsers raise this module's :class:`ConfigError`."""
    from collector.accounts.mail import mail_config
    from collector.backups.config import backup_config
    from collector.contracts.config import contracts_config

    try:
        return backup_config(raw), contracts_config(raw), mail_config(raw)
    except ConfigError as exc:
        section = exc.source.strip("[]")  # a feature names its table as the source
        key = exc.key
        if key != section and not key.startswith(f"{section}."):
            key = f"{section}.{key}"
        raise ConfigError(source, key, exc.expected) from None


def _notify_section(raw: dict[str, Any], source: str) -> None:
    """``[notify]``, checked here so that a bad value names this file at start; the
    notification feature reads it again when it starts."""
    from collector.notify.settings import notify_settings

    try:
        notify_settings(raw)
    except ConfigError as exc:
        raise ConfigError(source, exc.key, exc.expected) from None


def _log_section(raw: dict[str, Any], source: str) -> tuple[str, str]:
    lg = _table(raw, "log", source)
    for key in lg:
        if key not in ("format", "level"):
            raise ConfigError(source, f"log.{key}", "one of the known keys (format, level)")
    kind = _get(lg, "format", str, source, "log.", "text")
    if kind not in ("text", "logfmt", "json"):
        raise ConfigError(source, "log.format", '"text", "logfmt" or "json"')
    level = _get(lg, "level", str, source, "log.", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(source, "log.level", '"debug", "info", "warning" or "error"')
    return kind, level


def _read_file(path: str | Path | None) -> tuple[dict[str, Any], str]:
    """The TOML document at ``path`` (empty without one) and the name errors give it."""
    if path is None:
        return {}, "(defaults)"
    source = str(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh), source
    except FileNotFoundError:
        raise ConfigError(source, "(file)", "an existing TOML file") from None
    except OSError as exc:
        raise ConfigError(source, "(file)", f"a readable TOML file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "(file)", "UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", f"valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(source, "(syntax)", "TOML nested less deeply") from None


EVENT_LOOPS = ("uvloop", "asyncio")

_COLLECTOR_INTS: tuple[tuple[str, int, int, int], ...] = (
    # key, default, lowest, highest
    ("report_interval_s", 60, 1, 86400),
    ("offline_after_intervals", 3, 1, 1000),
    ("history_days", 30, 1, 36500),
    ("session_ttl_s", 3600, 60, 30 * 86400),
    ("session_cache_s", 5, 0, 300),
    ("max_clock_skew_s", 300, 5, 86400),
    ("read_timeout_s", 30, 1, 3600),
    ("min_body_bytes_per_s", 16 * 1024, 1, 2**30),
    ("housekeeping_interval_s", 600, 1, 30 * 86400),
    ("storage_check_interval_s", 5, 1, 3600),
    ("refusal_log_interval_s", 600, 1, 30 * 86400),
    ("task_retry_max_s", 300, 1, 86400),
    ("task_give_up_after", 10, 1, 1_000_000),
    ("task_lease_s", 30, 3, 86400),
    ("ingest_max_pending", 256, 1, 1_000_000),
    ("ingest_retry_after_s", 10, 1, 3600),
)


def _collector_section(
    raw: dict[str, Any], source: str, data_dir: str | Path | None, listen: str | None
) -> tuple[Path, str, dict[str, int]]:
    """``[collector]``: (data directory, listen address, the integer settings by name).

    The command line's ``--data`` wins over the file, which wins over ``VIGIL_DATA``."""
    table = _table(raw, "collector", source)
    p = "collector."
    file_data = _get(table, "data_dir", str, source, p, None)
    if not data_dir and file_data is None:
        data_dir = os.environ.get("VIGIL_DATA") or None
    data = Path(data_dir) if data_dir else Path(file_data or DEFAULT_DATA_DIR)
    file_listen = _get(table, "listen", str, source, p, DEFAULT_LISTEN)  # checked either way
    cfg_listen = listen or file_listen
    _, _, port = cfg_listen.rpartition(":")
    if not (port.isdigit() and int(port) <= 65535):
        where, key = ("command line", "--listen") if listen else (source, "collector.listen")
        raise ConfigError(where, key, "HOST:PORT with a port from 0 to 65535")
    if "\0" in str(data):
        raise ConfigError(source, "collector.data_dir", "a path without NUL characters")
    ints = {}
    for key, default, low, high in _COLLECTOR_INTS:
        v = _get(table, key, int, source, p, default)
        if not low <= v <= high:
            raise ConfigError(source, f"collector.{key}", f"an integer from {low} to {high}")
        ints[key] = v
    try:
        ints["report_reserve"] = parse_bytes(table.get("report_reserve", 64 * 1024 * 1024))
    except ValueError:
        raise ConfigError(source, "collector.report_reserve", 'a size (e.g. "64MiB")') from None
    return data, cfg_listen, ints


def _storage_section(raw: dict[str, Any], source: str, data: Path) -> StorageConfig:
    """``[storage]``: ``url`` (or ``VIGIL_STORAGE_URL`` when the table names no database)
    wins over ``kind``/``dsn``/``path``; SQLite's file defaults to the data directory."""
    st = _table(raw, "storage", source)
    url = _get(st, "url", str, source, "storage.", "")
    if not url and "kind" not in st and "path" not in st:
        url = os.environ.get("VIGIL_STORAGE_URL", "")
    kind = _get(st, "kind", str, source, "storage.", "sqlite")
    if kind not in ("sqlite", "postgresql"):
        raise ConfigError(source, "storage.kind", '"sqlite" or "postgresql"')
    dsn = _get(st, "dsn", str, source, "storage.", "")
    if url:
        kind, dsn, url_path = _storage_url(url, source)
        if url_path:
            st = {**st, "path": url_path}
    if kind == "postgresql" and not dsn:
        raise ConfigError(source, "storage.url", "a postgresql://user@host/database URL")
    sync = _get(st, "sqlite_synchronous", str, source, "storage.", "FULL").upper()
    if sync not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError(source, "storage.sqlite_synchronous", '"FULL", "NORMAL" or "EXTRA"')
    db_path = _get(st, "path", str, source, "storage.", str(data / "vigil.db"))
    if "\0" in db_path:
        raise ConfigError(source, "storage.path", "a path without NUL characters")
    return StorageConfig(kind=kind, path=Path(db_path), sqlite_synchronous=sync, dsn=dsn)


def load_config(
    path: str | Path | None = None, data_dir: str | Path | None = None, listen: str | None = None
) -> CollectorConfig:
    """Read ``path`` (if given), then apply the command line's ``--data`` and ``--listen``."""
    raw, source = _read_file(path)
    raw = watched(raw)
    data, cfg_listen, ints = _collector_section(raw, source, data_dir, listen)
    storage = _storage_section(raw, source, data)
    rate_limits, pages, metrics_token = _security_sections(raw, source)
    backup, contracts, mail = _feature_sections(raw, source)
    log_format, log_level = _log_section(raw, source)
    event_loop = _get(
        _table(raw, "collector", source), "event_loop", str, source, "collector.", "uvloop"
    )
    if event_loop not in EVENT_LOOPS:
        raise ConfigError(source, "collector.event_loop", '"uvloop" or "asyncio"')
    key_file = _get(_table(raw, "http", source), "session_key_file", str, source, "http.", "")
    if "\0" in key_file:
        raise ConfigError(source, "http.session_key_file", "a path without NUL characters")
    _notify_section(raw, source)
    for key, known in unread_keys(raw):
        raise ConfigError(source, key, refused_key(key, known))
    return CollectorConfig(
        event_loop=event_loop,
        session_key_file=Path(key_file) if key_file else None,
        log_format=log_format,
        log_level=log_level,
        data_dir=data,
        listen=cfg_listen,
        storage=storage,
        rate_limits=rate_limits,
        pages=pages,
        metrics_token=metrics_token,
        backup=backup,
        contracts=contracts,
        mail=mail,
        raw=raw,
        source=source,
        **ints,
    )

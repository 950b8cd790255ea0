"""SIGHUP: the running collector re-reads its configuration file.

Handlers read ``app[CONFIG]`` when a request comes, so a reload is one swap of that value:
requests in flight finish with the configuration they started with, connections stay
open, queued writes are not touched. Only what is read that way changes at once (the
``LIVE`` keys: intervals and thresholds the fleet view and the agents' settings use, the
pages' sessions, the metrics token, body-rate limits, the log); keys that shaped something
built at start (the listening socket, the storage, background tasks, rate limiters,
feature sections such as ``[backup]``) keep their running value, and the log names each
one that changed: it takes effect at the next restart.

A file that does not load changes nothing; one log line names the file, the key and the
reason.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable

from aiohttp import web

from collector.config import CollectorConfig, ConfigError
from collector.http.appkeys import CONFIG
from protocol import log_format

log = logging.getLogger("vigil.collector")

LIVE = frozenset(
    {
        "report_interval_s",
        "offline_after_intervals",
        "history_days",
        "session_ttl_s",
        "session_cache_s",
        "min_body_bytes_per_s",
        "report_reserve",
        "ingest_max_pending",
        "ingest_retry_after_s",
        "pages",
        "metrics_token",
        "log_format",
        "log_level",
    }
)
_NOT_COMPARED = frozenset({"raw", "source"})
_LIVE_TABLES = frozenset({"collector", "pages", "metrics", "log", "storage", "rate_limits"})
"""Tables whose keys are fields of the configuration (compared field by field)."""


def _changed(old: CollectorConfig, new: CollectorConfig) -> list[str]:
    keys = [
        f.name
        for f in dataclasses.fields(old)
        if f.name not in _NOT_COMPARED and getattr(old, f.name) != getattr(new, f.name)
    ]
    for table in sorted(set(old.raw) | set(new.raw)):
        if table not in _LIVE_TABLES and old.raw.get(table) != new.raw.get(table):
            keys.append(f"[{table}]")
    return keys


def reload_config(
    app: web.Application, load: Callable[[], CollectorConfig], log_level_flag: str | None = None
) -> bool:
    """Load the file again and apply what may change live; False when it was refused."""
    try:
        new = load()
    except ConfigError as exc:
        log.error(
            "configuration not reloaded; the running configuration stays",
            extra={
                "event": "reload_refused",
                "file": exc.source,
                "key": exc.key,
                "reason": f"expected {exc.expected}",
            },
        )
        return False
    old = app[CONFIG]
    changed = _changed(old, new)
    kept = [k for k in changed if k not in LIVE]
    for key in kept:
        log.warning(
            "configuration key needs a restart; keeping the running value",
            extra={"event": "reload_needs_restart", "file": new.source, "key": key},
        )
    live = {k: getattr(new, k) for k in changed if k in LIVE}
    applied = dataclasses.replace(old, **live, source=new.source)
    with warnings.catch_warnings():
        # aiohttp warns when a started application's state changes, because routes and
        # middlewares cannot; this swaps one value that handlers read per request.
        warnings.simplefilter("ignore", DeprecationWarning)
        app[CONFIG] = applied
    if {"log_format", "log_level"} & live.keys():
        log_format.configure(applied.log_format, log_level_flag or applied.log_level)
    log.info(
        "configuration reloaded",
        extra={"event": "reloaded", "file": new.source, "changed": ",".join(live) or "-"},
    )
    return True

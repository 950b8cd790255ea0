"""What every ``vigil-collector`` command shares: ``--config``/``--data``, opening the database."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from collector.config import CollectorConfig, ConfigError, load_config
from collector.storage import Database, open_database


def common() -> argparse.ArgumentParser:
    """A parent parser with ``--config FILE`` and ``--data DIR``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="FILE", help="collector configuration (TOML)")
    p.add_argument("--data", metavar="DIR", help="data directory (database, backups)")
    return p


def config_of(args: argparse.Namespace) -> CollectorConfig:
    return load_config(args.config, args.data, getattr(args, "listen", None))


def database_of(args: argparse.Namespace) -> Database:
    """The database of the configuration ``args`` name (works while ``serve`` runs)."""
    return open_database(config_of(args))


@contextlib.contextmanager
def opened_database(args: argparse.Namespace) -> Iterator[Database]:
    """``with opened_database(args) as db:``: the database, closed on the way out."""
    db = database_of(args)
    try:
        yield db
    finally:
        db.close()


def fail(message: str, code: int = 1) -> int:
    print(f"vigil-collector: {message}", file=sys.stderr)
    return code


def emit_json(value: Any) -> None:
    import json

    import msgspec

    def plain(o: object) -> object:
        return msgspec.to_builtins(o) if isinstance(o, msgspec.Struct) else str(o)

    print(json.dumps(value, indent=2, sort_keys=True, default=plain))


__all__ = [
    "ConfigError",
    "common",
    "config_of",
    "database_of",
    "emit_json",
    "fail",
    "opened_database",
]

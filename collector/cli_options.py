"""What every ``vigil-collector`` command shares: ``--config``/``--data``, opening the database."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.config import CollectorConfig, ConfigError, load_config
from collector.storage import Database, open_database


def common() -> argparse.ArgumentParser:
    """A parent parser with ``--config FILE`` and ``--data DIR``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="FILE", help="collector configuration (TOML)")
    p.add_argument("--data", metavar="DIR", help="data directory (database, backups)")
    return p


def before_the_command(parser: argparse.ArgumentParser) -> None:
    """``--config``/``--data`` accepted before the command too (``vigil-collector --data
    DIR servers``), as people type them; :func:`given_before_the_command` moves them."""
    parser.add_argument("--config", dest="config_before", metavar="FILE", help="as after it")
    parser.add_argument("--data", dest="data_before", metavar="DIR", help="as after it")


def given_before_the_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Give the command the options given before it (after it wins)."""
    for name in ("config", "data"):
        before = getattr(args, f"{name}_before", None)
        if before is None:
            continue
        if not hasattr(args, name):
            parser.error(f"{args.command} takes no --{name}")
        if getattr(args, name) is None:
            setattr(args, name, before)


def config_of(args: argparse.Namespace) -> CollectorConfig:
    return load_config(args.config, args.data, getattr(args, "listen", None))


class NoDatabase(Exception):
    """An admin command found no collector database where it looked."""


def database_of(args: argparse.Namespace, create: bool = False) -> Database:
    """The database of the configuration ``args`` name (works while ``serve`` runs).

    Only ``serve`` and the set-up command ``partner add`` create a database: any other
    command pointed at the wrong place (a typo in ``--data``, a forgotten ``--config``)
    says where it looked instead of printing an empty answer from a new, empty file.
    """
    cfg = config_of(args)
    storage = cfg.storage
    if storage.kind == "sqlite" and not create and not Path(storage.path).exists():
        if args.data:
            origin = "--data"
        elif args.config:
            origin = f"--config {args.config}"
        elif os.environ.get("VIGIL_DATA"):
            origin = "VIGIL_DATA"
        else:
            origin = "the default data directory"
        raise NoDatabase(
            f"no collector database at {storage.path} (from {origin}); point this command at "
            "the collector's data with --data DIR, --config FILE or VIGIL_DATA=DIR"
        )
    return open_database(cfg)


@contextlib.contextmanager
def opened_database(args: argparse.Namespace, create: bool = False) -> Iterator[Database]:
    """``with opened_database(args) as db:``: the database, closed on the way out."""
    db = database_of(args, create)
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
    "NoDatabase",
    "common",
    "config_of",
    "database_of",
    "emit_json",
    "fail",
    "opened_database",
]

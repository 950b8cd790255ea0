"""``vigil-collector migrate-storage``: move an installation from SQLite to PostgreSQL."""

from __future__ import annotations

import argparse
import contextlib

from collector.cli_options import emit_json, fail
from collector.storage import StorageUnavailable, open_url, storage_errors
from collector.storage.transfer import TransferError, plan, transfer


def _refused() -> tuple[type[Exception], ...]:
    return (TransferError, StorageUnavailable, *storage_errors())


def cmd_migrate_storage(args: argparse.Namespace) -> int:
    """Copy every table from ``--from`` to ``--to``; with ``--dry-run`` only say what would be."""
    try:
        with contextlib.ExitStack() as stack:
            source = open_url(args.source, create=False)
            stack.callback(source.close)
            target = open_url(args.target, create=not args.dry_run)
            stack.callback(target.close)
            order, report = plan(source, target)
            if not args.dry_run:
                report = transfer(source, target, order)
    except _refused() as exc:
        return fail(f"migrate-storage: {exc}")
    total = sum(report.tables.values())
    if args.json:
        emit_json({"dry_run": args.dry_run, "tables": report.tables, "rows": total})
        return 0
    for table in order:
        print(f"{table:32} {report.tables[table]:>10}")
    verb = "would copy" if args.dry_run else "copied and counted"
    print(f"{verb} {total} rows in {len(order)} tables")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "migrate-storage",
        help="copy a collector's data from SQLite to PostgreSQL (stop the collector first)",
    )
    p.add_argument("--from", dest="source", required=True, metavar="sqlite:///PATH")
    p.add_argument("--to", dest="target", required=True, metavar="postgresql://…")
    p.add_argument("--dry-run", action="store_true", help="check and count; write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migrate_storage)

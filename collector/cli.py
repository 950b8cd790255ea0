"""vigil-collector: run the collector and administer it.

Admin commands open the same database as ``serve`` (``--config``/``--data``) and work
while it runs. A command that creates a token or key prints it alone on its last line.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from collector import secrets_store
from collector.accounts import partners
from collector.cli_options import (
    NoDatabase,
    before_the_command,
    common,
    config_of,
    emit_json,
    fail,
    given_before_the_command,
    opened_database,
)
from collector.config import ConfigError
from collector.durations import parse_duration
from collector.health import servers
from collector.private_files import files_private
from collector.storage import integrity_errors, open_url, storage_errors
from protocol import log_format

Register = Callable[[argparse._SubParsersAction], None]


def _unreachable() -> tuple[type[Exception], ...]:
    """What opening a PostgreSQL database raises when it is not there, not reachable or
    not migratable by this collector."""
    from collector.storage.migrations import MigrationError

    return (ImportError, MigrationError, *storage_errors())


def _feature_registrations() -> list[Register]:
    from collector.accounts import cli as accounts_cli
    from collector.backups import cli as backups_cli
    from collector.contracts import cli as contracts_cli
    from collector.notify import cli as notify_cli
    from collector.storage import cli as storage_cli

    return [
        backups_cli.register,
        contracts_cli.register,
        notify_cli.register,
        accounts_cli.register,
        storage_cli.register,
    ]


def cmd_serve(args: argparse.Namespace) -> int:
    from collector import instance_lock

    config = config_of(args)
    log_format.configure(config.log_format, args.log_level or config.log_level)
    if args.listen_fd is not None:  # a worker of ``serve --workers``: its parent checked
        return _serve_here(args, config)
    if args.workers < 1:
        return fail("--workers must be at least 1", 2)
    lock: Any = None
    if config.storage.kind == "sqlite":
        if args.workers > 1:
            return fail(
                "--workers needs PostgreSQL storage: SQLite is the one-process embedded "
                "database (one writer at a time; this collector already commits many "
                "requests at once). Serve with one process, or move to PostgreSQL "
                "('vigil-collector migrate-storage', docs/deploy.md)",
                2,
            )
        try:
            lock = instance_lock.hold(config.data_dir)
        except instance_lock.AlreadyRunning as exc:
            return fail(str(exc), 2)
    else:
        try:  # migrated once, here, before any worker starts
            open_url(config.storage.dsn).close()
        except _unreachable() as exc:
            return fail(f"cannot open the PostgreSQL database: {exc}", 2)
    try:
        if args.workers == 1:
            return _serve_here(args, config)
        return _serve_workers(args, config)
    finally:
        if lock is not None:
            lock.close()


def _listen_failed(config: Any) -> int:
    return fail(
        f"cannot listen on {config.listen}: the address is already in use (another "
        "collector or program); choose another with --listen HOST:PORT",
        2,
    )


def _serve_here(args: argparse.Namespace, config: Any) -> int:
    import errno
    import socket

    from collector.server import run

    sock = None
    if args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)
    try:
        return run(
            config,
            reload_from=lambda: config_of(args),
            log_level_flag=args.log_level,
            sock=sock,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return _listen_failed(config)


def _serve_workers(args: argparse.Namespace, config: Any) -> int:
    import errno

    from collector.workers import Workers, bind, worker_command

    try:
        sock = bind(config.listen)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return _listen_failed(config)
    command = worker_command(args.config, args.data, config.listen, args.log_level)
    with sock:
        return Workers(command, args.workers, sock).run()


def cmd_partner_add(args: argparse.Namespace) -> int:
    with opened_database(args, create=True) as db:
        try:
            p = db.write_sync(lambda c: partners.add_partner(c, args.name))
        except integrity_errors():
            return fail(f"partner {args.name!r} already exists")
    if args.json:
        emit_json({"id": p.id, "name": p.name})
    else:
        print(f"partner {p.name} added (id {p.id})")
    return 0


def cmd_partner_list(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        listed = db.read_sync(partners.list_partners)
    if args.json:
        emit_json([{"id": p.id, "name": p.name} for p in listed])
    else:
        for p in listed:
            print(f"{p.id}\t{p.name}")
    return 0


def _partner_id(db: object, name: str) -> int:
    return db.read_sync(lambda c: partners.partner_by_name(c, name)).id  # type: ignore[attr-defined]


def cmd_token_create(args: argparse.Namespace) -> int:
    if args.uses < 1:
        return fail("--uses must be at least 1")
    try:
        ttl = parse_duration(args.ttl)
    except ValueError as exc:
        return fail(f"--ttl: {exc}")
    with opened_database(args) as db:
        pid = _partner_id(db, args.partner)
        token = db.write_sync(
            lambda c: secrets_store.create_token(
                c, pid, args.uses, ttl, allow_reenroll=args.allow_reenroll
            )
        )
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + ttl))
    if args.json:
        emit_json(
            {
                "partner": args.partner,
                "uses": args.uses,
                "expires": expires,
                "allow_reenroll": args.allow_reenroll,
                "token": token,
            }
        )
    else:
        also = "; may re-enroll machines already enrolled" if args.allow_reenroll else ""
        print(f"enrollment token for {args.partner}: {args.uses} use(s), expires {expires}{also}")
    print(token)
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from collector.accounts import store

    with opened_database(args) as db:
        pid = _partner_id(db, args.partner)
        if args.user:

            def for_user(c: sqlite3.Connection) -> str:
                found = store.user_by_email(c, args.user)
                if found is None or found[0].partner_id != pid:
                    raise secrets_store.NotFound(f"no user {args.user!r} of {args.partner}")
                return store.create_key(c, found[0], args.label or "")

            key = db.write_sync(for_user)
        else:
            key = db.write_sync(lambda c: secrets_store.create_api_key(c, pid))
    owner = args.user or f"{args.partner}'s service account"
    print(f"API key of {owner} (shown once; use it as 'Authorization: Bearer <key>'):")
    print(key)
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        n = db.write_sync(lambda c: secrets_store.revoke_api_key(c, args.prefix))
    if not n:
        return fail(f"no active API key starting with {args.prefix!r}")
    print(f"revoked {n} API key(s)")
    return 0


def cmd_servers(args: argparse.Namespace) -> int:
    # Imported here: the fleet view brings the backup and contract engines, which the
    # other commands need not load.
    from collector.health.fleet import FleetView

    cfg = config_of(args)
    with opened_database(args) as db:
        pid = _partner_id(db, args.partner) if args.partner else None
        views = db.read_sync(
            lambda c: FleetView(c, cfg.report_interval_s, cfg.offline_after_intervals).all(pid)
        )
    if args.json:
        emit_json({"servers": views, "count": len(views)})
        return 0
    print(f"{'ID':22} {'HOSTNAME':24} {'PARTNER':14} {'STATUS':9} {'CAMERAS':8} LAST SEEN")
    now = time.time()
    for v in views:
        seen = "never" if v["last_seen"] is None else f"{int(now - v['last_seen'])} s ago"
        print(
            f"{v['id']:22} {v['hostname'][:24]:24} {v['partner'][:14]:14} {v['status']:9} "
            f"{v['cameras']['total']:<8} {seen}"
        )
    return 0


def cmd_server_revoke(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        done = db.write_sync(lambda c: servers.revoke(c, args.server_id, time.time()))
        exists = db.read_sync(lambda c: servers.get(c, args.server_id)) is not None
    if not exists:
        return fail(f"no server {args.server_id!r}")
    print(
        f"server {args.server_id} revoked"
        if done
        else f"server {args.server_id} was already revoked"
    )
    return 0


def cmd_server_allow_reenroll(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl)
    except ValueError as exc:
        return fail(f"--ttl: {exc}")
    until = time.time() + ttl
    with opened_database(args) as db:
        outcome = db.write_sync(lambda c: servers.allow_reenroll(c, args.server_id, until))
    if outcome == "unknown":
        return fail(f"no server {args.server_id!r}")
    if outcome == "revoked":
        return fail(
            f"server {args.server_id} is revoked and stays revoked; to enroll the machine again "
            "as a new server, make a token with 'token create --partner P --allow-reenroll'"
        )
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
    print(
        f"server {args.server_id} may be re-enrolled once (its agent gets a new key) "
        f"until {expires}"
    )
    return 0


def cmd_server_interval(args: argparse.Namespace) -> int:
    try:
        seconds = int(parse_duration(args.interval))
    except ValueError as exc:
        return fail(str(exc))
    if seconds < 1:
        return fail("the report interval must be at least 1 s (30 s or more is usual)")
    with opened_database(args) as db:
        if args.partner:
            pid = _partner_id(db, args.partner)
            db.write_sync(lambda c: partners.set_report_interval(c, pid, seconds))
            print(f"report interval of {args.partner}'s servers: {seconds} s")
        elif not db.write_sync(lambda c: servers.set_report_interval(c, args.server_id, seconds)):
            return fail(f"no server {args.server_id!r}")
        else:
            print(f"report interval of {args.server_id}: {seconds} s")
    return 0


def _serve_command(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[c], help="run the collector")
    p.add_argument(
        "--listen", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8700)"
    )
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="default: [log] level of the configuration, else info",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve with N collector processes on one listening socket (PostgreSQL only)",
    )
    p.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)


def _account_commands(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``partner``, ``token`` and ``apikey``: who may enroll agents and call the API."""
    partner = sub.add_parser("partner", help="partners (integrators, resellers)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = partner.add_parser("add", parents=[c], help="add a partner")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_partner_add)
    p = partner.add_parser("list", parents=[c], help="list partners")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_partner_list)

    token = sub.add_parser("token", help="enrollment tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = token.add_parser(
        "create", parents=[c], help="create an enrollment token (printed on the last line)"
    )
    p.add_argument("--partner", required=True)
    p.add_argument(
        "--uses", type=int, default=1, help="how many agents may enroll with it (default 1)"
    )
    p.add_argument("--ttl", default="24h", help="how long it is valid (default 24h)")
    p.add_argument(
        "--allow-reenroll",
        action="store_true",
        help="let it re-enroll machines already enrolled (they keep their server id, "
        "get a new key); revoked servers stay revoked",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_token_create)

    apikey = sub.add_parser("apikey", help="partner API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = apikey.add_parser(
        "create", parents=[c], help="create an API key (printed on the last line)"
    )
    p.add_argument("--partner", required=True)
    p.add_argument("--user", metavar="EMAIL", help="the user whose role the key carries")
    p.add_argument("--label", help="what the key is for")
    p.set_defaults(func=cmd_apikey_create)
    p = apikey.add_parser("revoke", parents=[c], help="revoke API keys by their first characters")
    p.add_argument("prefix", help="the key's first 14 characters (vgl_key_xxxxxx)")
    p.set_defaults(func=cmd_apikey_revoke)


def _server_commands(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``servers`` (the list) and ``server`` (one server's revocation, re-enrollment, interval)."""
    p = sub.add_parser("servers", parents=[c], help="list enrolled servers with their status")
    p.add_argument("--partner")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_servers)

    server = sub.add_parser("server", help="one server").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = server.add_parser("revoke", parents=[c], help="shut an agent out at its next request")
    p.add_argument("server_id")
    p.set_defaults(func=cmd_server_revoke)
    p = server.add_parser(
        "allow-reenroll",
        parents=[c],
        help="consent to one re-enrollment of a server (a reinstalled agent keeps its id)",
    )
    p.add_argument("server_id")
    p.add_argument("--ttl", default="24h", help="how long the consent lasts (default 24h)")
    p.set_defaults(func=cmd_server_allow_reenroll)
    p = server.add_parser(
        "interval", parents=[c], help="set the report interval (server or partner)"
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--server", dest="server_id")
    g.add_argument("--partner")
    p.add_argument("interval", help="e.g. 60s, 5m")
    p.set_defaults(func=cmd_server_interval)


def build_parser() -> argparse.ArgumentParser:
    """The command line: the collector's own commands, then each feature's (its ``register``)."""
    parser = argparse.ArgumentParser(prog="vigil-collector", description=__doc__.splitlines()[0])
    before_the_command(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = common()
    _serve_command(sub, c)
    _account_commands(sub, c)
    _server_commands(sub, c)
    for register in _feature_registrations():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given_before_the_command(parser, args)
    try:
        with files_private():
            return int(args.func(args) or 0)
    except (ConfigError, NoDatabase) as exc:
        return fail(str(exc), 2)
    except secrets_store.NotFound as exc:
        return fail(str(exc))
    except PermissionError as exc:  # most often: not run as the collector's user
        where = exc.filename or "the collector's data"
        return fail(
            f"permission denied: {where}; run this as the user that owns the collector's "
            "data (the packages' vigil-collector), or give it a directory of yours with "
            "--data DIR",
            2,
        )
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head, grep -q): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

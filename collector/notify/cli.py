"""``vigil-collector channel|route|silence|notify …``: notification set-up from the shell.

``channel add`` prints the new channel's id alone on the last line (and, for a webhook,
the signing secret on the line before: shown this once only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from collector.cli_options import common, config_of, emit_json, fail, opened_database
from collector.durations import parse_duration
from collector.key_files import KeyFileError
from collector.notify import events, store
from collector.notify.channel_secrets import SecretBox, load_notify_key
from collector.notify.settings import notify_settings
from collector.secrets_store import NotFound as PartnerNotFound
from collector.secrets_store import partner_by_name


def _partner(db: Any, name: str) -> int:
    return db.read_sync(lambda c: partner_by_name(c, name)).id


def _box(args: argparse.Namespace) -> SecretBox:
    config = config_of(args)
    return SecretBox(load_notify_key(config.data_dir, notify_settings(config.raw).key_file))


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (
            store.NotifyError,
            store.NotFound,
            PartnerNotFound,
            ValueError,
            KeyFileError,
        ) as exc:
            return fail(str(exc))

    return run


def _listed(
    args: argparse.Namespace,
    read: Callable[[Any, int | None], list[Any]],
    key: str,
    as_json: Callable[[Any], Any],
    line: Callable[[Any], str],
) -> int:
    """A ``list`` command: ``read(connection, partner id or None)``, printed as JSON under
    ``key`` or a ``line`` each."""
    with opened_database(args) as db:
        pid = _partner(db, args.partner) if args.partner else None
        items = db.read_sync(lambda c: read(c, pid))
    if args.json:
        emit_json({key: [as_json(item) for item in items]})
        return 0
    for item in items:
        print(line(item))
    return 0


def _changed(args: argparse.Namespace, change: Callable[[Any, int], Any], done: str) -> int:
    """A ``remove``/``end`` command: ``change(connection, partner id)``, then ``done``."""
    with opened_database(args) as db:
        pid = _partner(db, args.partner)
        db.write_sync(lambda c: change(c, pid))
    print(done)
    return 0


def cmd_channel_add(args: argparse.Namespace) -> int:
    config, secret = store.channel_parts(
        args.type,
        {
            "url": args.url,
            "secret": args.secret,
            "host": args.host,
            "port": args.port,
            "security": args.security,
            "username": args.username,
            "from": args.mail_from,
            "to": args.to,
        },
    )
    with opened_database(args) as db:
        pid = _partner(db, args.partner)
        box = _box(args)
        ch = db.write_sync(
            lambda c: store.add_channel(
                c,
                box,
                pid,
                args.type,
                args.name or args.type,
                config,
                secret,
                time.time(),
                args.customer or "",
            )
        )
    if args.type == "webhook":
        print(f"signing secret (shown once): {secret}")
    print(ch.id)
    return 0


def cmd_channel_list(args: argparse.Namespace) -> int:
    def line(ch: store.Channel) -> str:
        health = "healthy" if ch.healthy else f"UNHEALTHY ({ch.last_error})"
        return f"{ch.id}  {ch.type:8} {ch.name}  {health}"

    return _listed(args, store.list_channels, "channels", store.Channel.to_json, line)


def cmd_channel_remove(args: argparse.Namespace) -> int:
    return _changed(
        args,
        lambda c, pid: store.remove_channel(c, pid, args.channel, time.time()),
        f"removed {args.channel}",
    )


def cmd_route_add(args: argparse.Namespace) -> int:
    quiet_from, _, quiet_until = (args.quiet or "").partition("-")
    with opened_database(args) as db:
        pid = _partner(db, args.partner)
        route = store.Route(
            id=0,
            partner_id=pid,
            channel_id=args.channel,
            kinds=args.kinds,
            min_severity=args.min_severity,
            customer=args.customer or "",
            site=args.site or "",
            group_wait_s=parse_duration(args.group_wait),
            repeat_s=parse_duration(args.repeat),
            send_resolved=not args.no_resolved,
            digest=args.digest,
            digest_hour=args.digest_hour,
            quiet_from=quiet_from,
            quiet_until=quiet_until,
            timezone=args.tz,
        )
        made = db.write_sync(lambda c: store.add_route(c, route, time.time()))
    print(made.id)
    return 0


def cmd_route_list(args: argparse.Namespace) -> int:
    return _listed(
        args,
        store.list_routes,
        "routes",
        store.Route.to_json,
        lambda r: f"{r.id}  {r.channel_id}  kinds={r.kinds} severity>={r.min_severity}",
    )


def cmd_route_remove(args: argparse.Namespace) -> int:
    return _changed(
        args,
        lambda c, pid: store.remove_route(c, pid, args.route),
        f"removed route {args.route}",
    )


def cmd_silence_add(args: argparse.Namespace) -> int:
    now = time.time()
    with opened_database(args) as db:
        pid = _partner(db, args.partner)
        made = db.write_sync(
            lambda c: store.add_silence(
                c,
                pid,
                args.scope,
                args.value,
                now,
                now + parse_duration(args.duration),
                args.reason or "",
                now,
            )
        )
    print(made["id"])
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    def line(s: dict[str, Any]) -> str:
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(s["ends_at"]))
        return f"{s['id']}  {s['scope']}={s['value']}  until {until}  {s['reason']}"

    return _listed(
        args,
        lambda c, pid: store.list_silences(c, pid, time.time()),
        "silences",
        lambda s: s,
        line,
    )


def cmd_silence_end(args: argparse.Namespace) -> int:
    return _changed(
        args,
        lambda c, pid: store.end_silence(c, pid, args.silence, time.time()),
        f"ended silence {args.silence}",
    )


def cmd_notify_test(args: argparse.Namespace) -> int:
    # Imported here: the notifier brings aiohttp's client, which the other commands (and
    # every other vigil-collector command, which registers these) need not load.
    from collector.notify.notifier import Notifier

    cfg = config_of(args)
    with opened_database(args) as db:
        db.read_sync(lambda c: store.get_channel(c, None, args.channel))
        notifier = Notifier(db, _box(args), notify_settings(cfg.raw))

        async def go() -> Any:
            try:
                return await notifier.send_test(args.channel)
            finally:
                await notifier.close()

        outcome = asyncio.run(go())
    if args.json:
        emit_json({"ok": outcome.ok, "answer": outcome.answer, "latency_ms": outcome.latency_ms})
    else:
        word = "ok" if outcome.ok else "FAILED"
        print(f"{args.channel}: {word}: {outcome.answer} ({outcome.latency_ms:.0f} ms)")
    return 0 if outcome.ok else 1


def cmd_notify_label(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        pid = _partner(db, args.partner)
        db.write_sync(
            lambda c: store.set_labels(c, pid, args.server, args.customer or "", args.site or "")
        )
    print(f"{args.server}: customer={args.customer or '-'} site={args.site or '-'}")
    return 0


def cmd_notify_events(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        pid = _partner(db, args.partner) if args.partner else None
        rows = db.read_sync(lambda c: events.event_log(c, pid, args.after, args.limit))
    print(json.dumps({"events": rows}, indent=2))
    return 0


def _sub(parent: Any, name: str, help: str, func: Any, c: argparse.ArgumentParser) -> Any:
    p = parent.add_parser(name, parents=[c], help=help)
    p.set_defaults(func=_guarded(func))
    return p


def _sub_list(parent: Any, help: str, func: Any, c: argparse.ArgumentParser) -> None:
    """``… list [--partner NAME] [--json]``."""
    p = _sub(parent, "list", help, func, c)
    p.add_argument("--partner")
    p.add_argument("--json", action="store_true")


def _sub_one(
    parent: Any, name: str, help: str, func: Any, c: argparse.ArgumentParser, item: str, kind: Any
) -> None:
    """``… remove|end --partner NAME ITEM``: one of the partner's items by its id."""
    p = _sub(parent, name, help, func, c)
    p.add_argument("--partner", required=True)
    p.add_argument(item, type=kind)


def _channel_commands(subparsers: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``channel add|list|remove``."""
    channel = subparsers.add_parser("channel", help="notification channels").add_subparsers(
        dest="channel_command", required=True
    )
    p = _sub(channel, "add", "add a webhook, e-mail or Apprise channel", cmd_channel_add, c)
    p.add_argument("--partner", required=True)
    p.add_argument("--type", required=True, choices=store.CHANNEL_TYPES)
    p.add_argument("--name")
    p.add_argument("--customer", help="only for this customer's own sites")
    p.add_argument("--url", help="webhook URL, or the Apprise URL")
    p.add_argument("--secret", help="webhook whsec_ secret (made if absent) or SMTP password")
    p.add_argument("--host", help="SMTP server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--security", choices=("starttls", "tls", "none"), default="starttls")
    p.add_argument("--username")
    p.add_argument("--from", dest="mail_from")
    p.add_argument("--to", help="recipients, comma-separated")
    _sub_list(channel, "list channels and their health", cmd_channel_list, c)
    _sub_one(channel, "remove", "remove a channel", cmd_channel_remove, c, "channel", str)


def _route_commands(subparsers: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``route add|list|remove``."""
    route = subparsers.add_parser("route", help="notification routes").add_subparsers(
        dest="route_command", required=True
    )
    p = _sub(route, "add", "send matching events to a channel", cmd_route_add, c)
    p.add_argument("--partner", required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--kinds", default="*", help="comma-separated kinds, * globs")
    p.add_argument("--min-severity", default="info")
    p.add_argument("--customer")
    p.add_argument("--site")
    p.add_argument("--group-wait", default="30s")
    p.add_argument("--repeat", default="4h")
    p.add_argument("--no-resolved", action="store_true", help="no resolved notices")
    p.add_argument("--digest", action="store_true", help="one message a day instead")
    p.add_argument("--digest-hour", type=int, default=8)
    p.add_argument("--quiet", metavar="HH:MM-HH:MM", help="quiet hours (critical still sent)")
    p.add_argument("--tz", default="UTC")
    _sub_list(route, "list routes", cmd_route_list, c)
    _sub_one(route, "remove", "remove a route", cmd_route_remove, c, "route", int)


def _silence_commands(subparsers: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``silence add|list|end``."""
    silence = subparsers.add_parser("silence", help="maintenance windows").add_subparsers(
        dest="silence_command", required=True
    )
    p = _sub(silence, "add", "silence a server, site or customer until an end", cmd_silence_add, c)
    p.add_argument("--partner", required=True)
    p.add_argument("--scope", required=True, choices=store.SILENCE_SCOPES)
    p.add_argument("--value", default="", help="server id, site or customer")
    p.add_argument("--duration", required=True, help="e.g. 2h, 90m")
    p.add_argument("--reason")
    _sub_list(silence, "silences not yet ended", cmd_silence_list, c)
    _sub_one(silence, "end", "end a silence now", cmd_silence_end, c, "silence", int)


def _notify_commands(subparsers: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``notify test|label|events``."""
    notify = subparsers.add_parser("notify", help="notifications").add_subparsers(
        dest="notify_command", required=True
    )
    p = _sub(notify, "test", "send a test message to a channel now", cmd_notify_test, c)
    p.add_argument("--channel", required=True)
    p.add_argument("--json", action="store_true")
    p = _sub(notify, "label", "set a server's customer and site", cmd_notify_label, c)
    p.add_argument("--partner", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--customer")
    p.add_argument("--site")
    p = _sub(notify, "events", "the event log with what became of each event", cmd_notify_events, c)
    p.add_argument("--partner")
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--limit", type=int, default=100)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``channel``, ``route``, ``silence`` and ``notify`` commands."""
    c = common()
    _channel_commands(subparsers, c)
    _route_commands(subparsers, c)
    _silence_commands(subparsers, c)
    _notify_commands(subparsers, c)

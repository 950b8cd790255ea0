"""``vigil-collector recovery-key …`` and ``vigil-collector backup …`` admin commands."""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from collector.accounts import partners
from collector.backups import catalog, maintenance, promise
from collector.backups.errors import BackupRefused, BreaksPromise
from collector.backups.objectstore import ObjectStore, open_object_store
from collector.backups.policy import BackupPolicy, format_duration
from collector.backups.recipients import RecipientInvalid, check_recipient
from collector.backups.status import backup_status, fleet_backup_status
from collector.cli_options import common, config_of, database_of, emit_json, fail, opened_database
from collector.durations import parse_interval
from collector.health import servers
from protocol import recipient_list
from protocol.backup_window import check_window

R = TypeVar("R")


def _partner_id(db: Any, name: str) -> int | None:
    return db.read_sync(lambda c: partners.id_by_name(c, name))


def cmd_recovery_key_add(args: argparse.Namespace) -> int:
    if recipient_list.is_signed_list(args.recipient):
        return _add_signed_list(args)
    try:
        recipient = check_recipient(args.recipient)
    except RecipientInvalid as exc:
        return fail(str(exc))
    with opened_database(args) as db:
        pid = _partner_id(db, args.partner)
        if pid is None:
            return fail(f"no partner {args.partner!r}")
        role = "extra" if args.extra else "recovery"
        added = db.write_sync(
            lambda c: catalog.add_recipient(c, pid, recipient, role, args.label, time.time())
        )
    if args.json:
        emit_json({"partner": args.partner, "recipient": recipient, "role": role, "added": added})
    elif added:
        print(f"{role} recipient added for {args.partner}: {recipient}")
    else:
        print(f"{recipient} was already a recipient for {args.partner}")
    return 0


def _add_signed_list(args: argparse.Namespace) -> int:
    """A list signed by the partner's offline key: stored whole (agents check the signature
    against the key they pinned), its recipients added as recovery keys."""
    try:
        signed = recipient_list.verify(args.recipient)
    except recipient_list.RecipientListError as exc:
        return fail(str(exc))
    signer = recipient_list.fingerprint(base64.b64decode(signed.signer))
    now = time.time()
    with opened_database(args) as db:
        pid = _partner_id(db, args.partner)
        if pid is None:
            return fail(f"no partner {args.partner!r}")

        def store(c: Any) -> tuple[bool, list[str]]:
            if not catalog.put_recipient_list(
                c, pid, args.recipient.strip(), signer, signed.created_at, now
            ):
                return False, []
            for r in signed.recipients:
                catalog.add_recipient(c, pid, r, "recovery", args.label, now)
            named = set(signed.recipients)
            return True, [
                r["recipient"]
                for r in catalog.list_recipients(c, pid)
                if r["recipient"] not in named
            ]

        stored, unsigned = db.write_sync(store)
    if not stored:
        return fail(f"{args.partner} already has a newer signed recipient list; not replaced")
    if args.json:
        emit_json(
            {
                "partner": args.partner,
                "signer": signer,
                "signed_at": signed.created_at,
                "recipients": signed.recipients,
                "unsigned": unsigned,
            }
        )
        return 0
    print(
        f"signed recipient list stored for {args.partner}: {len(signed.recipients)} "
        f"recipient(s), signed by partner key {signer}"
    )
    for r in unsigned:
        print(
            f"warning: {r} is not in the signed list: agents that pinned the partner's key "
            "will not back up until it is removed (vigil-collector recovery-key remove) "
            "or a list naming it is added",
            file=sys.stderr,
        )
    return 0


def cmd_recovery_key_remove(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        pid = _partner_id(db, args.partner)
        if pid is None:
            return fail(f"no partner {args.partner!r}")
        removed = db.write_sync(lambda c: catalog.remove_recipient(c, pid, args.recipient))
    if not removed:
        return fail(f"{args.recipient} is not a recipient for {args.partner}")
    print(f"recipient removed for {args.partner}: {args.recipient}")
    return 0


def cmd_recovery_key_list(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        pid = _partner_id(db, args.partner)
        if pid is None:
            return fail(f"no partner {args.partner!r}")
        rows = db.read_sync(lambda c: catalog.list_recipients(c, pid))
        signed = db.read_sync(lambda c: catalog.get_recipient_list(c, pid))
    if args.json:
        emit_json(rows)
    else:
        if signed is not None:
            print(f"signed recipient list from partner key {signed['signer']}", file=sys.stderr)
        if not rows:
            print(
                f"no recovery key for {args.partner}: its servers cannot back up", file=sys.stderr
            )
        for r in rows:
            print(f"{r['recipient']}\t{r['role']}\t{r['label']}")
    return 0


def _policy_from_args(args: argparse.Namespace) -> BackupPolicy:
    interval = None
    if args.interval is not None:
        interval = parse_interval(args.interval)
    window = None
    if args.window is not None:
        window = check_window(args.window)
    for name in ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more")
    return BackupPolicy(
        interval_s=interval,
        window=window,
        keep_last=args.keep_last,
        keep_daily=args.keep_daily,
        keep_weekly=args.keep_weekly,
        keep_monthly=args.keep_monthly,
        keep_yearly=args.keep_yearly,
    )


def _policy_json(p: BackupPolicy) -> dict[str, Any]:
    return {
        "interval_s": p.interval_s,
        "interval": None if p.interval_s is None else format_duration(p.interval_s),
        "window": p.window,
        "keep_last": p.keep_last,
        "keep_daily": p.keep_daily,
        "keep_weekly": p.keep_weekly,
        "keep_monthly": p.keep_monthly,
        "keep_yearly": p.keep_yearly,
    }


def cmd_policy_set(args: argparse.Namespace) -> int:
    try:
        changes = _policy_from_args(args)
    except ValueError as exc:
        return fail(str(exc))
    with opened_database(args) as db:
        if args.partner is not None:
            pid = _partner_id(db, args.partner)
            if pid is None:
                return fail(f"no partner {args.partner!r}")
            scope, scope_id = "partner", str(pid)
        else:
            if db.read_sync(lambda c: servers.brief(c, args.server_id)) is None:
                return fail(f"no server {args.server_id!r}")
            scope, scope_id = "server", args.server_id
        override = args.override_contract
        try:
            broken = db.write_sync(
                lambda c: promise.store_policy(c, scope, scope_id, changes, time.time(), override)
            )
        except BreaksPromise as exc:
            return fail(
                f"refused: {exc.message}"
                " (--override-contract REASON to run it anyway; the monthly report shows it)"
            )
        except BackupRefused as exc:
            return fail(exc.message)
        stored = db.read_sync(lambda c: catalog.get_policy(c, scope, scope_id))
    assert stored is not None
    if broken:
        print("override recorded: " + "; ".join(broken), file=sys.stderr)
    if args.json:
        emit_json(
            {
                "scope": scope,
                "id": scope_id,
                **_policy_json(stored),
                "contract_override": override if broken else None,
                "breaks": broken,
            }
        )
    else:
        target = f"partner {args.partner}" if scope == "partner" else f"server {scope_id}"
        shown = {
            k: v for k, v in _policy_json(stored).items() if v is not None and k != "interval_s"
        }
        print(f"backup policy of {target}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        if db.read_sync(lambda c: servers.brief(c, args.server_id)) is None:
            return fail(f"no server {args.server_id!r}")
        eff = db.read_sync(lambda c: promise.effective_for_server(c, args.server_id))
    shown = {
        **_policy_json(eff.policy),
        "promise": None if eff.promise is None else eff.promise.source,
        "contract_override": eff.override,
        "breaks": list(eff.broken) if eff.override is not None else [],
    }
    if args.json:
        emit_json(shown)
    else:
        for k, v in shown.items():
            print(f"{k}\t{v}")
    return 0


def _on_store(args: argparse.Namespace, work: Callable[[Any, ObjectStore], Awaitable[R]]) -> R:
    """Run ``work(db, store)`` on the configured database and object store, closing both."""
    cfg = config_of(args)
    db = database_of(args)
    store = open_object_store(cfg.backup.storage, cfg.data_dir)

    async def run() -> R:
        try:
            return await work(db, store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    finally:
        db.close()


def cmd_prune(args: argparse.Namespace) -> int:
    report = _on_store(args, lambda db, store: maintenance.prune(db, store, dry_run=args.dry_run))
    if args.json:
        emit_json(report.to_json())
    else:
        verb = "would remove" if args.dry_run else "removed"
        for e in report.removed:
            print(f"{verb} {e['server_id']} seq {e['seq']} ({e['kind']}) {e['backup_id']}")
        for e in report.failed:
            print(f"could not remove {e['backup_id']}: {e['reason']}", file=sys.stderr)
        print(f"{verb} {len(report.removed)} backups, kept {report.kept}")
    return 1 if report.failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    report = _on_store(args, maintenance.check_integrity)
    if args.json:
        emit_json(report.to_json())
    else:
        for e in report.corrupt:
            print(
                f"DAMAGED {e['server_id']} seq {e['seq']} {e['backup_id']}: {e['reason']}",
                file=sys.stderr,
            )
        for e in report.errors:
            print(f"UNREADABLE {e['backup_id']}: {e['reason']}", file=sys.stderr)
        print(
            f"checked {report.checked} backups: {report.ok} ok, {len(report.corrupt)} damaged, "
            f"{len(report.errors)} unreadable"
        )
    return 1 if report.corrupt or report.errors else 0


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def cmd_status(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        if args.server_id is not None:
            if db.read_sync(lambda c: servers.brief(c, args.server_id)) is None:
                return fail(f"no server {args.server_id!r}")
            rows = {args.server_id: db.read_sync(lambda c: backup_status(c, args.server_id))}
        else:
            pid = None
            if args.partner is not None:
                pid = _partner_id(db, args.partner)
                if pid is None:
                    return fail(f"no partner {args.partner!r}")
            rows = db.read_sync(lambda c: fleet_backup_status(c, pid))
    if args.json:
        emit_json(rows)
        return 0
    for sid, st in sorted(rows.items(), key=lambda kv: (not kv[1]["overdue"], kv[0])):
        flag = "OVERDUE" if st["overdue"] else st["state"].replace("_", " ")
        line = (
            f"{sid}\t{flag}\tlast success {_when(st['last_success'])}\t"
            f"next due {_when(st['next_due'])}"
        )
        if st["last_failure"] is not None:
            line += f"\tlast failure {_when(st['last_failure'])}: {st['last_failure_reason']}"
        print(line)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        if db.read_sync(lambda c: servers.brief(c, args.server_id)) is None:
            return fail(f"no server {args.server_id!r}")
        rows = db.read_sync(lambda c: catalog.list_backups(c, args.server_id))
    if args.json:
        emit_json([b.public() for b in reversed(rows)])
        return 0
    for b in reversed(rows):
        base = f" (unchanged since {b.base_seq})" if b.kind == "unchanged" else ""
        print(f"{b.seq}\t{b.id}\t{_when(b.created_at)}\t{b.size}\t{b.status}{base}")
    return 0


def _recovery_key_commands(
    subparsers: argparse._SubParsersAction, c: argparse.ArgumentParser
) -> None:
    rk = subparsers.add_parser(
        "recovery-key", help="partners' backup recipients (public age keys only)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rk.add_parser(
        "add",
        parents=[c],
        help="add a recipient (age1…) every backup of the partner's servers is encrypted to",
    )
    p.add_argument("--partner", required=True)
    p.add_argument("--label", default="", help="a note (whose key, where it is kept)")
    p.add_argument("--extra", action="store_true", help="a further recipient, not the recovery key")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "recipient",
        metavar="RECIPIENT",
        help="age1… (from `vigil-backup keygen`), or a signed list vigil-recipients-v1:… "
        "(from `vigil-backup sign-recipients`) that pinned agents require",
    )
    p.set_defaults(func=cmd_recovery_key_add)
    p = rk.add_parser("remove", parents=[c], help="stop encrypting new backups to a recipient")
    p.add_argument("--partner", required=True)
    p.add_argument("recipient", metavar="RECIPIENT")
    p.set_defaults(func=cmd_recovery_key_remove)
    p = rk.add_parser("list", parents=[c], help="list a partner's recipients")
    p.add_argument("--partner", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recovery_key_list)


def _policy_commands(bk: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``backup policy set|show``."""
    pol = bk.add_parser("policy", help="interval, window and retention").add_subparsers(
        dest="policy_action", required=True, metavar="ACTION"
    )
    p = pol.add_parser(
        "set",
        parents=[c],
        help="set a partner's default or a server's override (unset fields inherit)",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--partner")
    g.add_argument("--server", dest="server_id")
    p.add_argument("--interval", metavar="DURATION", help="e.g. 24h, 12h, 7d; 0 = no backups")
    p.add_argument("--window", metavar="HH:MM-HH:MM", help='server local time; "" = any time')
    for name in ("last", "daily", "weekly", "monthly", "yearly"):
        p.add_argument(f"--keep-{name}", type=int, metavar="N")
    p.add_argument(
        "--override-contract",
        metavar="REASON",
        help="run a policy below the contract's backup promise (shown in the monthly report)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy_set)
    p = pol.add_parser("show", parents=[c], help="a server's effective policy")
    p.add_argument("--server", dest="server_id", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy_show)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``recovery-key add|remove|list`` and ``backup policy|status|list|prune|check``."""
    c = common()
    _recovery_key_commands(subparsers, c)
    bk = subparsers.add_parser("backup", help="backup policy, retention, integrity").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    _policy_commands(bk, c)
    p = bk.add_parser(
        "status", parents=[c], help="last success, last failure, next due (overdue first)"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--server", dest="server_id")
    g.add_argument("--partner")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = bk.add_parser("list", parents=[c], help="a server's stored backups, newest first")
    p.add_argument("--server", dest="server_id", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = bk.add_parser("prune", parents=[c], help="apply retention policies now")
    p.add_argument("--dry-run", action="store_true", help="show what would be removed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prune)
    p = bk.add_parser(
        "check", parents=[c], help="re-read every stored backup and check size and SHA-256"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)

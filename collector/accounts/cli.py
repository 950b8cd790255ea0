"""``vigil-collector user|org|grant``: the operator's commands for accounts.

``user add`` prints the new user's password alone on the last line when it made one up
(no ``--password-stdin``), like every command that creates a secret.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

from collector import secrets_store
from collector.accounts import partners, passwords, store, totp
from collector.cli_options import common, emit_json, fail, opened_database


def _partner(c: Any, name: str) -> int:
    return secrets_store.partner_by_name(c, name).id


def _customer(c: Any, partner_id: int, name: str | None) -> int | None:
    return None if not name else store.customer_id(c, partner_id, name)


def cmd_user_add(args: argparse.Namespace) -> int:
    made_up = not args.password_stdin
    password = secrets.token_urlsafe(15) if made_up else sys.stdin.readline().rstrip("\n")
    try:
        hashed = passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        return fail(str(exc))
    with opened_database(args) as db:

        def write(c: Any) -> store.User:
            pid = _partner(c, args.partner)
            return store.add_user(
                c, args.email, hashed, pid, args.role, _customer(c, pid, args.customer)
            )

        try:
            user = db.write_sync(write)
        except store.AccountError as exc:
            return fail(str(exc))
    where = f"customer {user.customer} of {user.partner}" if user.customer else user.partner
    print(f"user {user.email} added: {user.role} of {where} (id {user.id})")
    if made_up:
        print("password (shown once):")
        print(password)
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    with opened_database(args) as db:

        def read(c: Any) -> list[store.User]:
            return store.list_users(c, _partner(c, args.partner) if args.partner else None)

        users = db.read_sync(read)
    if args.json:
        emit_json([{**u.to_json(), "partner": u.partner} for u in users])
        return 0
    for u in users:
        state = "disabled" if u.disabled_at else "active"
        org = f"{u.partner}/{u.customer}" if u.customer else u.partner
        print(f"{u.id}\t{u.email}\t{org}\t{u.role}\t{state}")
    return 0


def _by_email(c: Any, email: str) -> store.User:
    found = store.user_by_email(c, email)
    if found is None:
        raise secrets_store.NotFound(f"no user {email!r}")
    return found[0]


def cmd_user_disable(args: argparse.Namespace, off: bool = True) -> int:
    with opened_database(args) as db:
        db.write_sync(lambda c: store.set_disabled(c, None, _by_email(c, args.email).id, off))
    print(f"user {args.email} {'disabled; its sign-ins ended' if off else 'enabled'}")
    return 0


def cmd_user_totp(args: argparse.Namespace) -> int:
    """Turn two-step sign-in on (the otpauth:// address last) or off for a user."""
    secret = None if args.off else totp.new_secret()
    with opened_database(args) as db:
        db.write_sync(lambda c: store.set_totp(c, _by_email(c, args.email).id, secret))
    if secret is None:
        print(f"two-step sign-in off for {args.email}; its sign-ins ended")
        return 0
    print(f"two-step sign-in on for {args.email}; its sign-ins ended. Give this address to")
    print("the user's authenticator app (as text or a QR code), shown once:")
    print(totp.uri(secret, args.email))
    return 0


def cmd_org_add(args: argparse.Namespace) -> int:
    if args.vendor and args.customer_of is not None:
        return fail("an organisation is the vendor or a customer, not both")
    with opened_database(args, create=args.customer_of is None) as db:
        if args.customer_of is None:
            p = db.write_sync(lambda c: partners.add_partner(c, args.name, vendor=args.vendor))
            kind = "vendor organisation" if args.vendor else "partner"
            print(f"{kind} {p.name} added (id {p.id})")
            return 0
        try:
            cid = db.write_sync(
                lambda c: store.add_customer(c, _partner(c, args.customer_of), args.name)
            )
        except store.AccountError as exc:
            return fail(str(exc))
    print(f"customer {args.name} of {args.customer_of} added (id {cid})")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    with opened_database(args) as db:

        def write(c: Any) -> store.User:
            user = _by_email(c, args.email)
            customer: int | str | None = ""
            if args.customer:
                customer = store.customer_id(c, user.partner_id, args.customer)
            elif args.partner_wide:
                customer = None
            store.grant(c, None, user.id, args.role, customer)
            found = store.get_user(c, None, user.id)
            assert found is not None
            return found

        try:
            user = db.write_sync(write)
        except store.AccountError as exc:
            return fail(str(exc))
    where = f"customer {user.customer}" if user.customer else f"partner {user.partner}"
    print(f"user {user.email}: {user.role} of {where}; its sign-ins ended")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    c = common()
    user = sub.add_parser("user", help="people who sign in to the pages").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = user.add_parser("add", parents=[c], help="add a user (a made-up password on the last line)")
    p.add_argument("email")
    p.add_argument("--partner", required=True)
    p.add_argument("--customer", help="a customer of the partner: the user sees only its sites")
    p.add_argument("--role", default="viewer", choices=store.ROLES)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=cmd_user_add)
    p = user.add_parser("list", parents=[c], help="list users")
    p.add_argument("--partner")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_user_list)
    p = user.add_parser("disable", parents=[c], help="disable a user: its sign-ins and keys end")
    p.add_argument("email")
    p.set_defaults(func=cmd_user_disable)
    p = user.add_parser(
        "totp", parents=[c], help="two-step sign-in on (otpauth:// address last) or off"
    )
    p.add_argument("email")
    p.add_argument("--off", action="store_true")
    p.set_defaults(func=cmd_user_totp)
    p = user.add_parser("enable", parents=[c], help="enable a disabled user again")
    p.add_argument("email")
    p.set_defaults(func=lambda a: cmd_user_disable(a, off=False))

    org = sub.add_parser("org", help="organisations: partners and their customers").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = org.add_parser("add", parents=[c], help="add a partner, or with --customer-of a customer")
    p.add_argument("name", help="a customer's name as its contracts spell it")
    p.add_argument("--customer-of", metavar="PARTNER")
    p.add_argument(
        "--vendor",
        action="store_true",
        help="the vendor organisation: its users read every partner's fleet, incidents and "
        "contracts (add them with user add --partner NAME)",
    )
    p.set_defaults(func=cmd_org_add)

    p = sub.add_parser("grant", parents=[c], help="set a user's role (and customer)")
    p.add_argument("email")
    p.add_argument("--role", required=True, choices=store.ROLES)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--customer", help="limit the user to this customer's sites")
    g.add_argument("--partner-wide", action="store_true", help="lift a customer limit")
    p.set_defaults(func=cmd_grant)

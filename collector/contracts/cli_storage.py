"""``vigil-collector`` contract commands that use the database: contracts, releases,
check, incident, report, prices/sma. Every handler returns an exit code; errors go to
stderr; every command that prints a result has ``--json``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from collector import instants
from collector.accounts.partners import list_partners
from collector.cli_options import common, opened_database
from collector.contracts import repository as repo
from collector.contracts import service
from collector.contracts.importer import (
    MAX_YEAR,
    MIN_YEAR,
    ImportFailed,
    csv_rows,
    detect_format,
    parse_contracts,
    parse_releases,
    plan_import,
)
from collector.contracts.incidents import (
    Action,
    TransitionError,
    apply,
    incident_to_json,
    open_incident,
)
from collector.contracts.plans import get_plan
from collector.contracts.pricing import edition_upgrade, sma_quote
from collector.contracts.reports import render_csv, render_json
from collector.contracts.views import build_report, contract_view, parse_month

MAX_FILE = 64 * 1024 * 1024


def _fail(message: str, code: int = 1) -> int:
    print(f"vigil-collector: {message}", file=sys.stderr)
    return code


def _emit(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _read_file(path: str) -> str:
    p = Path(path)
    if p.stat().st_size > MAX_FILE:
        raise ValueError(f"{path} is larger than {MAX_FILE // (1024 * 1024)} MiB")
    return p.read_text(encoding="utf-8-sig")


def _instant(text: str | None) -> dt.datetime:
    """ISO 8601 with an offset, in the years 1970-9999 (now when absent)."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    t = instants.parse_instant(text)
    try:
        return instants.within_years(t)
    except instants.OutOfRange:
        raise ValueError(f"{text!r} is outside the years {MIN_YEAR}-{MAX_YEAR}") from None


def _event_time(text: str | None) -> dt.datetime:
    """An incident's opening or action time: as :func:`_instant`, not in the future."""
    t = _instant(text)
    if t.timestamp() > time.time() + 300:
        raise ValueError(f"{text!r} is in the future")
    return t


def register(sub: argparse._SubParsersAction) -> None:
    """The contract engine's subcommands, in the order ``--help`` lists them."""
    c = common()
    _register_contracts(sub, c)
    _register_releases(sub, c)
    _register_check(sub, c)
    _register_incident(sub, c)
    _register_report(sub, c)
    _register_prices_and_sma(sub, c)


def _register_contracts(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``contracts import|list|show``."""
    contracts = sub.add_parser("contracts", help="maintenance contracts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = contracts.add_parser("import", parents=[c], help="import contracts from CSV or TOML")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p.add_argument(
        "--keep-missing",
        action="store_true",
        help="do not remove a partner's contracts the file no longer lists",
    )
    p.add_argument("--format", choices=["csv", "toml"], help="default: from the file name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contracts_import)
    p = contracts.add_parser("list", parents=[c], help="list current contracts")
    p.add_argument("--partner")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contracts_list)
    p = contracts.add_parser("show", parents=[c], help="one contract with its history")
    p.add_argument("contract_id")
    p.add_argument("--partner", help="whose contract (needed when several partners use the id)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contracts_show)


def _register_releases(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``releases import``: the release catalogue."""
    releases = sub.add_parser("releases", help="release catalogue").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = releases.add_parser("import", parents=[c], help="import product,version,released_on")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--format", choices=["csv", "toml"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_releases_import)


def _register_check(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``check``: the contract checks now."""
    p = sub.add_parser("check", parents=[c], help="run the contract checks now")
    p.add_argument("--json", action="store_true")
    p.add_argument("--at", metavar="TIME", help="evaluate at this instant (ISO 8601 with offset)")
    p.add_argument(
        "--no-incidents", action="store_true", help="do not open incidents for the findings"
    )
    p.set_defaults(func=cmd_check)


def _register_incident(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``incident open|list|show`` and one subcommand per incident action."""
    inc = sub.add_parser("incident", help="incidents and their response targets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = inc.add_parser("open", parents=[c], help="open an incident by hand")
    p.add_argument("--contract", required=True)
    p.add_argument("--partner", help="whose contract (needed when several partners use the id)")
    p.add_argument("--priority", required=True)
    p.add_argument("--server")
    p.add_argument("--title", default="")
    p.add_argument("--opened", metavar="TIME", help="when it was opened (default now)")
    p.add_argument("--by", default="cli")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_incident_open)
    p = inc.add_parser("list", parents=[c], help="list incidents")
    p.add_argument("--partner")
    p.add_argument("--state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_incident_list)
    p = inc.add_parser("show", parents=[c], help="one incident with its clocks")
    p.add_argument("incident_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_incident_show)
    for action in (
        "acknowledge",
        "pause",
        "resume",
        "workaround",
        "contact",
        "answer",
        "resolve",
        "accept",
        "reopen",
    ):
        p = inc.add_parser(action, parents=[c], help=f"{action} an incident")
        p.add_argument("incident_id")
        p.add_argument("--at", metavar="TIME", help="when (default now)")
        p.add_argument("--by", default="cli")
        p.add_argument("--note", default="")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_incident_action, incident_action=action)


def _register_report(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``report``: the monthly compliance report."""
    p = sub.add_parser("report", parents=[c], help="monthly contract compliance report")
    p.add_argument("--month", required=True, metavar="YYYY-MM")
    p.add_argument("--by", choices=["partner", "customer"], default="customer")
    p.add_argument("--partner")
    p.add_argument("--tz", default="Europe/Berlin")
    p.add_argument("--format", choices=["json", "csv"], default=None)
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.set_defaults(func=cmd_report)


def _register_prices_and_sma(sub: argparse._SubParsersAction, c: argparse.ArgumentParser) -> None:
    """``prices import`` and ``sma quote|upgrade``."""
    prices = sub.add_parser("prices", help="SMA module price list").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = prices.add_parser("import", parents=[c], help="import module,price rows (CSV)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prices_import)
    sma = sub.add_parser("sma", help="software maintenance agreement").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = sma.add_parser("quote", parents=[c], help="yearly SMA price for a server's modules")
    p.add_argument("--server", required=True)
    p.add_argument("--year", type=int, default=1)
    p.add_argument("--bought-later", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sma_quote)
    p = sma.add_parser(
        "upgrade",
        parents=[c],
        help="edition upgrade price for a server (old edition credited with an active SMA)",
    )
    p.add_argument("--server", required=True)
    p.add_argument("--from", dest="from_edition", required=True, metavar="EDITION")
    p.add_argument("--to", dest="to_edition", required=True, metavar="EDITION")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sma_upgrade)


# --- contracts -----------------------------------------------------------------------------


def cmd_contracts_import(args: argparse.Namespace) -> int:
    try:
        text = _read_file(args.file)
        fmt = args.format or detect_format(args.file, text)
        incoming = parse_contracts(text, fmt)
    except ImportFailed as exc:
        for e in exc.errors:
            print(f"{args.file}: {e}", file=sys.stderr)
        return _fail(f"nothing imported: {len(exc.errors)} error(s) in {args.file}")
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    with opened_database(args) as db:
        known = db.read_sync(lambda c: {p.name for p in list_partners(c)})
        for name in sorted({c.partner for c in incoming} - known):
            print(
                f"warning: partner {name!r} is not known yet; its contracts are stored but "
                f"nobody sees them until `vigil-collector partner add {name}`",
                file=sys.stderr,
            )
        remove = not args.keep_missing
        if args.dry_run:
            plan = db.read_sync(
                lambda c: plan_import(
                    repo.all_current_contracts(c), incoming, remove_missing=remove
                )
            )
        else:
            source = f"import {Path(args.file).name}"

            def write(c: Any) -> Any:
                # Planned and applied in one transaction: nothing changes in between.
                planned = plan_import(
                    repo.all_current_contracts(c), incoming, remove_missing=remove
                )
                repo.apply_import(c, planned, time.time(), source)
                return planned

            plan = db.write_sync(write)
    if args.json:
        _emit({"dry_run": args.dry_run, **plan.to_json()})
    else:
        verb = "would change" if args.dry_run else "changed"
        for c in plan.added:
            print(f"+ {c.id}  {c.customer}  {c.plan}")
        for c, ch in plan.changed:
            print(f"~ {c.id}  {', '.join(ch.fields)}")
        for c in plan.removed:
            print(f"- {c.id}  {c.customer}  {c.plan}")
        print(f"{verb}: {plan.summary()}")
    return 0


def cmd_contracts_list(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        contracts = db.read_sync(
            lambda c: list(
                repo.all_current_contracts(c).values()
                if args.partner is None
                else repo.current_contracts(c, args.partner).values()
            )
        )
        contracts = db.read_sync(lambda c: repo.with_enrollment_dates(c, contracts))
    rows = [contract_view(c) for c in sorted(contracts, key=lambda c: (c.id, c.partner))]
    if args.json:
        _emit({"contracts": rows, "count": len(rows)})
    else:
        for r in rows:
            print(
                f"{r['id']:16} {r['partner']:12} {r['customer']:20} {r['plan']:20} "
                f"{r['coverage']:10} {r['last_covered_day'] or 'open-ended'}"
            )
    return 0


def _owner(conn: Any, contract_id: str, partner: str | None) -> str:
    """The partner whose contract ``contract_id`` is meant: ``partner`` if given, else the
    only partner that has (or had) one of that id; ``LookupError`` when none or several."""
    if partner is not None:
        return partner
    owners = repo.partners_with_contract(conn, contract_id)
    if not owners:
        raise LookupError(f"no contract {contract_id!r}")
    if len(owners) > 1:
        raise LookupError(
            f"partners {', '.join(owners)} each have a contract {contract_id!r}; "
            "name one with --partner"
        )
    return owners[0]


def cmd_contracts_show(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        try:
            owner = db.read_sync(lambda conn: _owner(conn, args.contract_id, args.partner))
        except LookupError as exc:
            return _fail(str(exc.args[0]))
        c = db.read_sync(lambda conn: repo.get_contract(conn, owner, args.contract_id))
        if c is not None:
            found = c
            (c,) = db.read_sync(lambda conn: repo.with_enrollment_dates(conn, [found]))
        hist = db.read_sync(lambda conn: repo.history_json(conn, owner, args.contract_id))
    if c is None and not hist:
        return _fail(f"no contract {args.contract_id!r}")
    data = {
        "contract": None if c is None else contract_view(c),
        "history": hist,
    }
    if args.json:
        _emit(data)
    else:
        print(json.dumps(data, indent=2))
    return 0


def cmd_releases_import(args: argparse.Namespace) -> int:
    try:
        text = _read_file(args.file)
        fmt = args.format or detect_format(args.file, text)
        rel = parse_releases(text, fmt)
    except ImportFailed as exc:
        for e in exc.errors:
            print(f"{args.file}: {e}", file=sys.stderr)
        return _fail(f"nothing imported: {len(exc.errors)} error(s) in {args.file}")
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    with opened_database(args) as db:
        current = db.read_sync(repo.load_releases)
        added = sum(1 for r in rel if (r.product, r.version) not in current)
        changed = sum(
            1
            for r in rel
            if (r.product, r.version) in current
            and current[(r.product, r.version)] != r.released_on
        )
        if not args.dry_run:
            db.write_sync(lambda c: repo.upsert_releases(c, rel))
    if args.json:
        _emit({"dry_run": args.dry_run, "added": added, "changed": changed, "total": len(rel)})
    else:
        verb = "would change" if args.dry_run else "changed"
        print(f"{verb}: {added} added, {changed} changed, {len(rel)} in file")
    return 0


# --- checks --------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    try:
        now = _instant(args.at).timestamp()
    except ValueError as exc:
        return _fail(f"--at: {exc}")
    with opened_database(args) as db:
        try:
            result = service.run_checks_sync(db, now, open_incidents=not args.no_incidents)
        except (OverflowError, ValueError) as exc:
            return _fail(f"--at: cannot evaluate the contracts then ({exc})")
    if args.json:
        _emit(result.to_json())
    else:
        for f in result.findings:
            print(f"{f.severity.value:8} {f.server_id or '-':20} {f.kind:32} {f.message}")
        print(f"{len(result.findings)} finding(s); {len(result.new_incidents)} incident(s) opened")
    return 0


# --- incidents -----------------------------------------------------------------------------


def cmd_incident_open(args: argparse.Namespace) -> int:
    try:
        opened = _event_time(args.opened)
    except ValueError as exc:
        return _fail(f"--opened: {exc}")
    with opened_database(args) as db:
        try:
            owner = db.read_sync(lambda c: _owner(c, args.contract, args.partner))
        except LookupError as exc:
            return _fail(str(exc.args[0]))
        contract = db.read_sync(lambda c: repo.get_contract(c, owner, args.contract))
        if contract is None:
            return _fail(f"no contract {args.contract!r}")
        plan = get_plan(contract.plan)
        priority = plan.priority(args.priority)
        if priority is None:
            return _fail(
                f"plan {plan.name} has priorities {', '.join(plan.priorities)}, "
                f"not {args.priority!r}"
            )
        inc = open_incident(
            service.new_incident_id(),
            plan,
            priority,
            opened,
            calendar=contract.calendar_spec(),
            contract_id=contract.id,
            server_id=args.server,
            title=args.title,
            by=args.by,
        )
        now = time.time()
        db.write_sync(lambda c: repo.insert_incident(c, inc, contract.partner, now))
    data = incident_to_json(inc, dt.datetime.now(dt.UTC))
    if args.json:
        _emit(data)
    else:
        print(f"incident {inc.id} opened; response due {data['response']['due'] or 'none'}")
        print(inc.id)
    return 0


def cmd_incident_list(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        incs = db.read_sync(lambda c: repo.list_incidents(c, args.partner, state=args.state))
    now = dt.datetime.now(dt.UTC)
    rows = [incident_to_json(i, now) for i in incs]
    if args.json:
        _emit({"incidents": rows, "count": len(rows)})
    else:
        for r in rows:
            print(
                f"{r['id']:16} {r['priority']:6} {r['state']:12} "
                f"response {r['response']['status']:10} resolution {r['resolution']['status']:10} "
                f"{r['title']}"
            )
    return 0


def cmd_incident_show(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        got = db.read_sync(lambda c: repo.get_incident(c, args.incident_id))
    if got is None:
        return _fail(f"no incident {args.incident_id!r}")
    data = incident_to_json(got[0], dt.datetime.now(dt.UTC))
    _emit(data)
    return 0


def cmd_incident_action(args: argparse.Namespace) -> int:
    try:
        at = _event_time(args.at)
    except ValueError as exc:
        return _fail(f"--at: {exc}")
    with opened_database(args) as db:

        def change(conn: Any) -> Any:
            got = repo.get_incident(conn, args.incident_id)
            if got is None:
                raise LookupError(f"no incident {args.incident_id!r}")
            new = apply(got[0], Action(args.incident_action), at, by=args.by, note=args.note)
            repo.save_incident(conn, new, time.time())
            return new

        try:
            inc = db.write_sync(change)
        except LookupError as exc:
            return _fail(str(exc.args[0]))
        except TransitionError as exc:
            return _fail(str(exc))
    data = incident_to_json(inc, dt.datetime.now(dt.UTC))
    if args.json:
        _emit(data)
    else:
        print(f"incident {inc.id}: {data['state']}")
    return 0


# --- reports and prices --------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    try:
        year, month = parse_month(args.month)
    except ValueError as exc:
        return _fail(str(exc))
    fmt = "json" if args.json else (args.format or "csv")
    with opened_database(args) as db:
        now = time.time()
        rows = db.read_sync(
            lambda c: build_report(c, year, month, args.by, args.partner, args.tz, now)
        )
    sys.stdout.write(render_json(rows) + "\n" if fmt == "json" else render_csv(rows))
    return 0


def cmd_prices_import(args: argparse.Namespace) -> int:
    try:
        text = _read_file(args.file)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    prices: dict[str, Decimal] = {}
    errors = []
    for line, row in csv_rows(text):
        module = (row.get("module") or "").strip()
        try:
            price = Decimal((row.get("price") or "").strip().replace(",", "."))
            if not module or price < 0:
                raise InvalidOperation
        except InvalidOperation:
            errors.append(f"line {line}: need module and a non-negative price")
            continue
        prices[module] = price
    if errors:
        for e in errors:
            print(f"{args.file}: {e}", file=sys.stderr)
        return _fail(f"nothing imported: {len(errors)} error(s)")
    with opened_database(args) as db:
        now = time.time()
        db.write_sync(lambda c: repo.set_module_prices(c, prices, now))
    if args.json:
        _emit({"imported": len(prices)})
    else:
        print(f"{len(prices)} module price(s) imported")
    return 0


def cmd_sma_upgrade(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        if not db.read_sync(lambda c: repo.server_licence(c, args.server)):
            return _fail(f"no server {args.server!r}")
        active = db.read_sync(lambda c: service.sma_in_force(c, args.server))
        prices = db.read_sync(repo.module_prices)
    pricing = get_plan("sma").pricing
    assert pricing is not None
    try:
        data = edition_upgrade(args.from_edition, args.to_edition, prices, active, pricing)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    if args.json:
        _emit({"server_id": args.server, **data})
    else:
        credit = "old edition credited" if active else "no active SMA: no credit"
        print(f"{args.from_edition} -> {args.to_edition}: {data['price']} ({credit})")
    return 0


def cmd_sma_quote(args: argparse.Namespace) -> int:
    with opened_database(args) as db:
        modules = db.read_sync(lambda c: repo.server_modules(c, args.server))
        prices = db.read_sync(repo.module_prices)
    plan = get_plan("sma")
    assert plan.pricing is not None
    try:
        q = sma_quote(
            modules,
            prices,
            plan.pricing,
            year=args.year,
            bought_with_software=not args.bought_later,
        )
    except ValueError as exc:
        return _fail(str(exc))
    data = {"server_id": args.server, **q.to_json()}
    if args.json:
        _emit(data)
    else:
        print(
            f"year {q.year}: {q.percent.normalize()}% of {q.list_total} = {q.price}"
            + (f" (no list price: {', '.join(q.unknown_modules)})" if q.unknown_modules else "")
        )
    return 0

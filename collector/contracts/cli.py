"""``vigil-collector`` subcommands of the contract engine.

``register(subparsers)`` adds them to the collector's CLI; every handler takes the argparse
Namespace and returns an exit code. Errors go to stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from collector import instants
from collector.contracts.calendar import CalendarError
from collector.contracts.plans import get_plan
from collector.contracts.sla import due_times


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sla`` (and, with storage, ``contracts``/``check``/``incident``/``report``)."""
    sla = subparsers.add_parser("sla", help="SLA due times")
    sla_sub = sla.add_subparsers(dest="sla_command", required=True)
    due = sla_sub.add_parser(
        "due",
        help="response and resolution due times of a case",
        description=(
            "Due times for a case of PRIORITY under PLAN opened at TIME (ISO 8601 with its "
            "offset). The calendar flags override the plan's calendar; --hours applies "
            "Monday to Friday."
        ),
    )
    due.add_argument(
        "--plan", required=True, help="warranty, maintenance-support, sma, premium-24x7"
    )
    due.add_argument("--priority", required=True, help="high/medium/low or P1-P4")
    due.add_argument("--opened", required=True, metavar="TIME", help="ISO 8601 with offset")
    due.add_argument("--country", help="ISO 3166 country code for public holidays")
    due.add_argument("--subdiv", help="subdivision (state/region) code, e.g. BY")
    due.add_argument("--tz", help="IANA time zone, e.g. Europe/Berlin")
    due.add_argument("--hours", metavar="HH:MM-HH:MM", help="opening hours Monday-Friday")
    due.add_argument("--json", action="store_true", help="print JSON")
    due.set_defaults(func=cmd_sla_due)
    from collector.contracts import cli_storage

    cli_storage.register(subparsers)


def parse_instant(text: str) -> dt.datetime:
    """ISO 8601 with an offset (``Z`` accepted); ``ValueError`` otherwise."""
    try:
        return instants.parse_instant(text.strip())
    except instants.NoOffset:
        raise ValueError(f"{text!r} has no UTC offset (e.g. 2026-03-27T16:45+01:00)") from None


def cmd_sla_due(args: argparse.Namespace) -> int:
    try:
        plan = get_plan(args.plan)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    priority = plan.priority(args.priority)
    if priority is None:
        return _fail(
            f"plan {plan.name!r} has no priority {args.priority!r} "
            f"(choose from {', '.join(plan.priorities)})"
        )
    try:
        opened = parse_instant(args.opened)
    except ValueError as exc:
        return _fail(f"--opened: {exc}")
    try:
        spec = plan.calendar.with_overrides(
            timezone=args.tz, country=args.country, subdiv=args.subdiv, hours=args.hours
        )
        result = due_times(plan, priority, opened, spec)
    except CalendarError as exc:
        return _fail(str(exc))
    data = result.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key in ("opened", "response_due", "followup_due", "resolution_due"):
            target = data.get(key.replace("_due", "_target"))
            value = data[key] if data[key] is not None else "none"
            suffix = f"  ({target})" if key != "opened" and target else ""
            print(f"{key:15} {value}{suffix}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Standalone entry for tests and before the collector's CLI calls :func:`register`."""
    parser = argparse.ArgumentParser(prog="vigil-collector")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

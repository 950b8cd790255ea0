"""Parsing contract and release files (CSV as an ERP exports it, and TOML).

Everything is parsed and validated before anything is applied: one bad row fails the
whole file with every error and its line number (:class:`ImportFailed`), so a file is
never half-applied. :func:`plan_import` compares the parsed set with the current one and
says what would be added, changed and removed -- the dry run shows exactly that, the real
import applies exactly that.

CSV columns (header row required; ``,`` or ``;`` as delimiter, detected from the header;
column names are case-insensitive, unknown columns are ignored). See docs/contracts.md.

==================  ========  ============================================================
column              required  meaning
==================  ========  ============================================================
contract_id         yes       the ERP's contract number
customer            yes       customer name or number
partner             yes       partner (integrator/reseller) name, as in ``partner add``
plan                yes       warranty, maintenance-support, sma, premium-24x7
licence_ids         yes       licence ids covered, separated by ``|`` or spaces (or ``;``
                              when the delimiter is ``,``)
start               *         term start date (required unless the plan is anchored at
                              installation, then ``installed_on`` may stand in)
installed_on                  installation date of the software
term_months                   term length in months (plan default otherwise)
term_days                     term length in days (warranty: 90)
auto_renew                    yes/no (plan default otherwise)
notice_days                   cancellation notice in days before the period ends
grace_days                    days of grace after the end
renewals                      explicit renewals, months separated by ``|`` (``12|12``)
cancelled_on                  date the cancellation was received
ends_on                       agreed early end (first day no longer covered)
country, subdiv,              calendar overrides (holidays country/subdivision, IANA zone,
timezone, hours               opening hours ``HH:MM-HH:MM[,HH:MM-HH:MM]`` Monday-Friday)
bought_with_software          yes/no (SMA price basis)
==================  ========  ============================================================

Dates are ISO ``YYYY-MM-DD`` or ``DD.MM.YYYY``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.contracts.calendar import CalendarError, CalendarSpec, business_calendar
from collector.contracts.plans import Plan, get_plan
from collector.contracts.terms import Contract, Renewal
from collector.instants import MAX_YEAR, MIN_YEAR

MAX_ROWS = 200_000


@dataclass(frozen=True)
class RowError:
    line: int
    message: str
    field: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class ImportFailed(ValueError):
    """The file has errors; nothing of it may be applied."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} error(s): {shown}{more}")


class _RowInvalid(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


# Dates of a contract lie in the years MIN_YEAR-MAX_YEAR (inclusive), as every time does.

MAX_PRICE = 1_000_000_000.0
MAX_LICENCES = 1000
MAX_RENEWALS = 100

_DATE_DE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_DATE_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE = re.compile(r"[+-]?\d{1,9}")


def parse_date(text: str) -> dt.date:
    """``YYYY-MM-DD`` or ``DD.MM.YYYY`` in years 1970-9999; ``ValueError`` otherwise."""
    text = text.strip()
    m = _DATE_DE.fullmatch(text)
    if m:
        day = dt.date(int(m[3]), int(m[2]), int(m[1]))
    elif _DATE_ISO.fullmatch(text):
        day = dt.date.fromisoformat(text)
    else:
        raise ValueError(f"not a date: {text[:40]!r}")
    return in_years(day)


def in_years(day: dt.date) -> dt.date:
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"{day.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return day


def clean_text(v: str) -> str | None:
    """Why ``v`` cannot be stored as text (NUL, a lone surrogate), or None if it can."""
    if "\x00" in v:
        return "contains a NUL character"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "yes", "y", "true", "ja", "j", "x"):
        return True
    if t in ("0", "no", "n", "false", "nein", ""):
        return False
    raise ValueError(f"expected yes/no, got {text!r}")


def _get(row: Mapping[str, Any], key: str) -> Any:
    v = row.get(key)
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


def _text(row: Mapping[str, Any], key: str, limit: int = 256) -> str | None:
    """A plain text field (numbers accepted as text), or None when empty."""
    v = _get(row, key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise _RowInvalid(key, "must be text")
    if isinstance(v, int) and not -(2**63) < v < 2**63:
        raise _RowInvalid(key, "must be text")
    v = str(v)
    if len(v) > limit:
        raise _RowInvalid(key, f"longer than {limit} characters")
    bad = clean_text(v)
    if bad:
        raise _RowInvalid(key, bad)
    return v


def _date(row: Mapping[str, Any], key: str) -> dt.date | None:
    v = _get(row, key)
    if v is None:
        return None
    try:
        if isinstance(v, dt.datetime):
            return in_years(v.date())
        if isinstance(v, dt.date):
            return in_years(v)
        if not isinstance(v, str):
            raise ValueError(f"not a date: {v!r}")
        return parse_date(v)
    except ValueError as exc:
        raise _RowInvalid(key, f"{exc} (YYYY-MM-DD or DD.MM.YYYY)") from None


def whole_number(v: Any) -> int:
    """An int, or text of at most nine digits; ``ValueError`` for anything else (floats,
    booleans, ``nan``, ``inf``, ``1e308``, 20-digit numbers)."""
    if isinstance(v, bool):
        raise ValueError(f"not a whole number: {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and _WHOLE.fullmatch(v.strip()):
        return int(v.strip())
    shown = v[:40] if isinstance(v, str) else v
    raise ValueError(f"not a whole number: {shown!r}")


def _int(row: Mapping[str, Any], key: str, lo: int = 0, hi: int = 100_000) -> int | None:
    v = _get(row, key)
    if v is None:
        return None
    try:
        n = whole_number(v)
    except ValueError as exc:
        raise _RowInvalid(key, str(exc)) from None
    if not lo <= n <= hi:
        raise _RowInvalid(key, f"{n} is outside {lo}..{hi}")
    return n


def _bool(row: Mapping[str, Any], key: str) -> bool | None:
    v = _get(row, key)
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    try:
        return parse_bool(str(v))
    except ValueError as exc:
        raise _RowInvalid(key, str(exc)) from None


def _list(v: Any, seps: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list | tuple):
        if not all(isinstance(x, str | int) and not isinstance(x, bool) for x in v):
            raise ValueError("list entries must be text")
        return [str(x).strip() for x in v if str(x).strip()]
    if not isinstance(v, str | int) or isinstance(v, bool):
        raise ValueError("must be text or a list")
    return [p for p in re.split(f"[{re.escape(seps)}\\s]+", str(v)) if p]


def contract_from_row(row: Mapping[str, Any], list_seps: str = "|") -> Contract:
    """One contract from a CSV row or TOML table (keys as in the CSV header)."""
    required = _required(row)
    try:
        plan = get_plan(required["plan"])
    except KeyError as exc:
        raise _RowInvalid("plan", str(exc.args[0])) from None
    licences, renewal_parts = _listed(row, list_seps)
    start = _date(row, "start")
    installed = _date(row, "installed_on")
    if start is None and not (plan.term.anchor == "installation"):
        raise _RowInvalid("start", "missing (the plan's term starts at the contract start)")
    term_months = _term_months(row, plan)
    renewals = _renewals(renewal_parts)
    calendar = _calendar(row, plan.calendar)
    prices = _prices(row.get("list_prices") or {})
    bought = _bool(row, "bought_with_software")
    contract = Contract(
        id=required["contract_id"],
        customer=required["customer"],
        partner=required["partner"],
        plan=plan.name,
        licence_ids=tuple(licences),
        start=start,
        installed_on=installed,
        term_months=term_months,
        term_days=_int(row, "term_days", 1, 3660),
        auto_renew=_bool(row, "auto_renew"),
        notice_days=_int(row, "notice_days", 0, 3660),
        grace_days=_int(row, "grace_days", 0, 3660),
        renewals=tuple(renewals),
        cancelled_on=_date(row, "cancelled_on"),
        ends_on=_date(row, "ends_on"),
        calendar=calendar,
        list_prices=prices,
        sma_bought_with_software=True if bought is None else bought,
    )
    _readable(contract)
    return contract


def _required(row: Mapping[str, Any]) -> dict[str, str]:
    required = {}
    for key in ("contract_id", "customer", "partner", "plan"):
        v = _text(row, key)
        if v is None:
            raise _RowInvalid(key, "missing")
        required[key] = v
    return required


def _listed(row: Mapping[str, Any], list_seps: str) -> tuple[list[str], list[str]]:
    """(licence ids, renewals as written), each list checked as a whole."""
    try:
        licences = _list(_get(row, "licence_ids"), list_seps)
    except ValueError as exc:
        raise _RowInvalid("licence_ids", str(exc)) from None
    try:
        renewal_parts = _list(_get(row, "renewals"), list_seps)
    except ValueError as exc:
        raise _RowInvalid("renewals", str(exc)) from None
    if any(len(x) > 128 for x in licences):
        raise _RowInvalid("licence_ids", "a licence id is longer than 128 characters")
    if len(licences) > MAX_LICENCES:
        raise _RowInvalid("licence_ids", f"more than {MAX_LICENCES} licence ids")
    bad = next((b for b in map(clean_text, licences) if b), None)
    if bad:
        raise _RowInvalid("licence_ids", f"a licence id {bad}")
    if len(renewal_parts) > MAX_RENEWALS:
        raise _RowInvalid("renewals", f"more than {MAX_RENEWALS} renewals")
    if not licences:
        raise _RowInvalid("licence_ids", "at least one licence id is needed")
    return licences, renewal_parts


def _term_months(row: Mapping[str, Any], plan: Plan) -> int | None:
    term_months = _int(row, "term_months", 1, 120)
    if (
        term_months is not None
        and plan.term.max_months
        and not (plan.term.min_months <= term_months <= plan.term.max_months)
    ):
        raise _RowInvalid(
            "term_months",
            f"{plan.name} runs {plan.term.min_months}-{plan.term.max_months} months, "
            f"not {term_months}",
        )
    return term_months


def _renewals(parts: list[str]) -> list[Renewal]:
    renewals = []
    for part in parts:
        try:
            months = whole_number(part)
        except ValueError:
            raise _RowInvalid("renewals", f"not a number of months: {part[:40]!r}") from None
        if not 1 <= months <= 120:
            raise _RowInvalid("renewals", f"{months} months is outside 1..120")
        renewals.append(Renewal(months))
    return renewals


def _prices(prices_in: Any) -> tuple[tuple[str, float], ...]:
    """Module -> list price: finite, 0..1e9 (a NaN or 1e308 would break every report)."""
    if not isinstance(prices_in, Mapping):
        raise _RowInvalid("list_prices", "must be a table of module = price")
    if len(prices_in) > 1000:
        raise _RowInvalid("list_prices", "more than 1000 modules")
    out = []
    for k, v in prices_in.items():
        if not isinstance(k, str) or len(k) > 128 or clean_text(k):
            raise _RowInvalid("list_prices", "module names must be text of at most 128")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _RowInvalid("list_prices", f"{k}: the price must be a number")
        if not (isinstance(v, int) or math.isfinite(v)) or not 0 <= v <= MAX_PRICE:
            raise _RowInvalid("list_prices", f"{k}: the price must be 0..{MAX_PRICE:.0f}")
        out.append((k, float(v)))
    return tuple(sorted(out))


def _readable(contract: Contract) -> None:
    """Refuse a contract whose term, coverage or checks cannot be computed (a date so near
    9999 that its end overflows): stored, it would break every later list and check run."""
    from collector.contracts.checks import ServerFacts, check_server
    from collector.contracts.terms import evaluate_term

    try:
        term = evaluate_term(contract)
        today = dt.date.today()
        for day in (today, term.anchor, term.end, term.grace_until):
            if day is not None:
                term.status(day)
                term.period_end_after(day)
                term.last_day_to_cancel(day)
        server = ServerFacts(
            server_id="-", licence_id=contract.licence_ids[0], installed_on=contract.installed_on
        )
        check_server(server, [contract], time.time())
    except (ValueError, OverflowError, ArithmeticError, CalendarError) as exc:
        raise _RowInvalid(
            None, f"the term cannot be computed ({exc}); check the dates and lengths"
        ) from None


def _calendar(row: Mapping[str, Any], default: CalendarSpec) -> CalendarSpec | None:
    keys = ("country", "subdiv", "timezone", "hours")
    values = {k: _text(row, k) for k in keys}
    if all(v is None for v in values.values()):
        return None
    try:
        spec = default.with_overrides(
            timezone=values["timezone"],
            country=values["country"],
            subdiv=values["subdiv"],
            hours=values["hours"],
        )
        business_calendar(spec)
    except CalendarError as exc:
        field_name = next((k for k in keys if _get(row, k) is not None), None)
        raise _RowInvalid(field_name, str(exc)) from None
    return spec


def _sniff_delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def csv_rows(text: str) -> Iterable[tuple[int, dict[str, str]]]:
    """(line, row by lower-cased header) of a CSV text; a line the ``csv`` module cannot
    read (a bare carriage return inside a field, a field over its size limit) ends the
    rows with an ``__error__`` row, so the caller reports it like any other bad line."""
    text = text.lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    delim = _sniff_delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield 1, {"__error__": f"CSV: {exc}"}
        return
    names = [h.strip().lower() for h in header]
    line = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line + 1, {"__error__": f"CSV: {exc}"}
            return
        start_line = line + 1
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(names):
            yield start_line, {"__error__": f"{len(values)} fields, the header has {len(names)}"}
            continue
        yield start_line, dict(zip(names, values, strict=False))


def _list_seps_for(text: str) -> str:
    lines = text.lstrip("\ufeff").splitlines()  # a byte order mark alone is no line
    first = lines[0] if lines else ""
    return "|" if _sniff_delimiter(first) == ";" else "|;"


def _toml_tables(text: str, key: str) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ImportFailed([RowError(int(m[1]) if m else 1, f"TOML: {exc}")]) from None
    except RecursionError:
        raise ImportFailed([RowError(1, "TOML: nested too deeply")]) from None
    tables = data.get(key, [])
    if not isinstance(tables, list):
        raise ImportFailed([RowError(1, f"[[{key}]] must be an array of tables")])
    lines = [
        i + 1 for i, ln in enumerate(text.splitlines()) if re.match(rf"\s*\[\[\s*{key}\s*\]\]", ln)
    ]
    for i, table in enumerate(tables):
        yield (lines[i] if i < len(lines) else 1), table


def detect_format(name: str, text: str) -> str:
    """``toml`` or ``csv`` from the file name, else from the content."""
    lower = name.lower()
    if lower.endswith(".toml"):
        return "toml"
    if lower.endswith((".csv", ".txt")):
        return "csv"
    return "toml" if re.search(r"^\s*\[\[", text, re.M) else "csv"


def parse_contracts(text: str, fmt: str = "csv") -> list[Contract]:
    """All contracts of a file, or :class:`ImportFailed` with every bad row."""
    if fmt == "toml":
        rows: Iterable[tuple[int, Mapping[str, Any]]] = _toml_tables(text, "contract")
        seps = "|;"
    else:
        rows = csv_rows(text)
        seps = _list_seps_for(text)
    errors: list[RowError] = []
    out: list[Contract] = []
    seen: dict[str, int] = {}
    for n, (line, row) in enumerate(rows):
        if n >= MAX_ROWS:
            errors.append(RowError(line, f"more than {MAX_ROWS} contracts in one file"))
            break
        if "__error__" in row:
            errors.append(RowError(line, str(row["__error__"])))
            continue
        try:
            c = contract_from_row(row, seps)
        except _RowInvalid as exc:
            errors.append(RowError(line, exc.message, exc.field))
            continue
        if c.id in seen:
            errors.append(
                RowError(line, f"contract {c.id!r} already on line {seen[c.id]}", "contract_id")
            )
            continue
        seen[c.id] = line
        out.append(c)
    if not out and not errors:
        errors.append(RowError(1, "the file holds no contracts"))
    if errors:
        raise ImportFailed(errors)
    return out


@dataclass(frozen=True)
class Release:
    product: str
    version: str
    released_on: dt.date


def parse_releases(text: str, fmt: str = "csv") -> list[Release]:
    """Release catalogue: ``product,version,released_on`` rows or ``[[release]]`` tables."""
    rows = _toml_tables(text, "release") if fmt == "toml" else csv_rows(text)
    errors: list[RowError] = []
    out: list[Release] = []
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        if "__error__" in row:
            errors.append(RowError(line, str(row["__error__"])))
            continue
        try:
            product = _get(row, "product")
            version = _get(row, "version")
            if product is None:
                raise _RowInvalid("product", "missing")
            if version is None:
                raise _RowInvalid("version", "missing")
            released = _date(row, "released_on")
            if released is None:
                raise _RowInvalid("released_on", "missing")
        except _RowInvalid as exc:
            errors.append(RowError(line, exc.message, exc.field))
            continue
        key = (str(product), str(version))
        if key in seen:
            errors.append(RowError(line, f"{key[0]} {key[1]} listed twice", "version"))
            continue
        seen.add(key)
        out.append(Release(key[0], key[1], released))
    if errors:
        raise ImportFailed(errors)
    return out


@dataclass(frozen=True)
class Change:
    contract_id: str
    fields: tuple[str, ...]


@dataclass
class ImportPlan:
    """What an import changes against the current set."""

    added: list[Contract] = field(default_factory=list)
    changed: list[tuple[Contract, Change]] = field(default_factory=list)
    removed: list[Contract] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def to_json(self) -> dict[str, object]:
        return {
            "added": [c.id for c in self.added],
            "changed": [
                {"id": ch.contract_id, "fields": list(ch.fields)} for _, ch in self.changed
            ],
            "removed": [c.id for c in self.removed],
            "unchanged": self.unchanged,
        }

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged"
        )


def plan_import(
    current: Mapping[Any, Contract], incoming: Iterable[Contract], *, remove_missing: bool = True
) -> ImportPlan:
    """Compare. With ``remove_missing`` a contract of a partner present in the file that
    the file no longer lists is removed (an ERP export is the partner's full set);
    partners absent from the file are left alone. Contracts are matched by (partner, id):
    an id is unique per partner only, so a file never changes another partner's contract
    of the same id (``current``'s keys are not used)."""
    result = ImportPlan()
    incoming = list(incoming)
    partners = {c.partner for c in incoming}
    by_key = {(c.partner, c.id): c for c in current.values()}
    keys = set()
    for c in incoming:
        keys.add((c.partner, c.id))
        old = by_key.get((c.partner, c.id))
        if old is None:
            result.added.append(c)
        elif old != c:
            diff = tuple(
                f.name
                for f in dataclasses.fields(Contract)
                if getattr(old, f.name) != getattr(c, f.name)
            )
            result.changed.append((c, Change(c.id, diff)))
        else:
            result.unchanged += 1
    if remove_missing:
        result.removed = [
            c for key, c in sorted(by_key.items()) if key not in keys and c.partner in partners
        ]
    return result

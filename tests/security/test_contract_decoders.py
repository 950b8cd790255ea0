"""Property-based tests of the contract file decoders (CSV and TOML): whatever the text,
parsing ends quickly with contracts that every later read can show, or with
``ImportFailed`` -- the one exception the CLI and the import route turn into a clean
message. Never another exception, never a hang."""

from __future__ import annotations

import datetime as dt
import json
import math
import string

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from collector.contracts.codec import contract_from_dict, contract_to_dict
from collector.contracts.importer import (
    ImportFailed,
    _RowInvalid,
    contract_from_row,
    detect_format,
    parse_contracts,
    parse_releases,
)
from collector.contracts.views import contract_view

pytestmark = pytest.mark.timeout(300)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COLUMNS = (
    "contract_id",
    "customer",
    "partner",
    "plan",
    "licence_ids",
    "start",
    "installed_on",
    "term_months",
    "term_days",
    "auto_renew",
    "notice_days",
    "grace_days",
    "renewals",
    "cancelled_on",
    "ends_on",
    "country",
    "subdiv",
    "timezone",
    "hours",
    "bought_with_software",
)


def shown(contracts: list) -> None:
    """What a later list does with each stored contract must work."""
    for c in contracts:
        stored = json.loads(json.dumps(contract_to_dict(c)))
        again = contract_from_dict(stored)
        assert again == c
        view = contract_view(again)
        json.dumps(view, allow_nan=False)
        for _, price in c.list_prices:
            assert math.isfinite(price)


def decode(text: str, fmt: str) -> None:
    try:
        contracts = parse_contracts(text, fmt)
    except ImportFailed as exc:
        assert exc.errors and str(exc)
        event("refused")
        return
    assert contracts
    event("accepted")
    shown(contracts)


# --- random text ----------------------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=2000), st.sampled_from(["csv", "toml"]))
@example("\ufeff", "csv")  # a byte order mark alone: once an IndexError, a 500
@example("\ufeff\n\ufeff", "csv")
def test_random_text_is_contracts_or_a_clean_error(text: str, fmt: str) -> None:
    decode(text, fmt)
    detect_format("upload", text)


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes_as_an_upload(data: bytes) -> None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return  # the route answers 400 "not UTF-8" before parsing
    decode(text, detect_format("", text))


@SETTINGS
@given(st.text(max_size=1000))
def test_random_release_catalogue(text: str) -> None:
    for fmt in ("csv", "toml"):
        try:
            parse_releases(text, fmt)
        except ImportFailed as exc:
            assert exc.errors


# --- random structured rows -------------------------------------------------------------------

WILD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "nan",
            "inf",
            "-inf",
            "1e308",
            "-1",
            "0",
            "12",
            "12.5",
            str(2**63),
            str(2**64),
            "9" * 5000,
            "0001-01-01",
            "1969-12-31",
            "1970-01-01",
            "2026-02-29",
            "2024-02-29",
            "9999-12-31",
            "10000-01-01",
            "31.12.9999",
            "29.02.2024",
            "yes",
            "no",
            "x",
            "maintenance-support",
            "warranty",
            "sma",
            "premium-24x7",
            "acme",
            "L1|L2",
            "12|12",
            "120|" * 200,
            "Europe/Berlin",
            "UTC",
            "Mars/Olympus",
            "../../etc/passwd",
            "DE",
            "BY",
            "XX",
            "09:00-17:00",
            "00:00-24:00",
            "17:00-09:00",
            "25:00-26:00",
            "\x00",
            "a\nb",
            '"',
            ";",
        ]
    ),
)


def csv_cell(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


@SETTINGS
@given(
    st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=len(COLUMNS), unique=True),
    st.lists(st.lists(WILD_TEXT, min_size=0, max_size=len(COLUMNS) + 2), max_size=8),
    st.sampled_from([",", ";"]),
)
def test_random_csv_rows(columns: list[str], rows: list[list[str]], delim: str) -> None:
    lines = [delim.join(columns)]
    for r in rows:
        lines.append(delim.join(csv_cell(v) for v in r))
    decode("\n".join(lines) + "\n", "csv")


def _plausible_csv_row(values: dict[str, str]) -> str:
    base = {
        "contract_id": "C-1",
        "customer": "Museum",
        "partner": "acme",
        "plan": "maintenance-support",
        "licence_ids": "L1",
        "start": "2026-01-01",
    }
    base.update(values)
    return ",".join(COLUMNS) + "\n" + ",".join(csv_cell(base.get(c, "")) for c in COLUMNS) + "\n"


@SETTINGS
@given(st.dictionaries(st.sampled_from(COLUMNS), WILD_TEXT, max_size=6))
def test_one_field_wrong_in_an_otherwise_good_csv_row(values: dict[str, str]) -> None:
    decode(_plausible_csv_row(values), "csv")


# TOML values of every type, including the ones a file cannot mean.
TOML_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 12, 120, 121, -1, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
    WILD_TEXT,
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["base", "pro", "x", "hours", "mon"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise AssertionError(type(v))


@SETTINGS
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from((*COLUMNS, "list_prices", "calendar")), TOML_VALUES, max_size=8
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_random_toml_tables(tables: list[dict[str, object]], plausible: bool) -> None:
    parts = []
    for table in tables:
        if plausible:
            table = {
                "contract_id": "C-" + str(len(parts)),
                "customer": "Museum",
                "partner": "acme",
                "plan": "maintenance-support",
                "licence_ids": ["L1"],
                "start": dt.date(2026, 1, 1),
                **table,
            }
        body = "\n".join(f"{k} = {toml_value(v)}" for k, v in table.items())
        parts.append("[[contract]]\n" + body + "\n")
    decode("\n".join(parts), "toml")


@SETTINGS
@given(st.text(alphabet=string.printable, max_size=400))
def test_toml_looking_text(tail: str) -> None:
    decode("[[contract]]\n" + tail, "toml")


# --- the JSON body of PUT /api/v1/contracts/{id} ------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        WILD_TEXT,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=8,
)


@SETTINGS
@given(
    st.dictionaries(st.sampled_from((*COLUMNS, "list_prices")), JSON_VALUES, max_size=8),
    st.booleans(),
)
def test_random_json_contract_body(fields: dict[str, object], plausible: bool) -> None:
    """What the route catches (``_RowInvalid``, ``ValueError``, ``CalendarError``) or a
    contract every later read can show."""
    data: dict[str, object] = dict(fields)
    if plausible:
        data = {
            "customer": "Museum",
            "plan": "maintenance-support",
            "licence_ids": "L1",
            "start": "2026-01-01",
            **fields,
        }
    data["contract_id"] = "C-1"
    data["partner"] = "acme"
    try:
        contract = contract_from_row(data, "|;")
    except _RowInvalid as exc:
        assert exc.message
        event("refused")
        return
    event("accepted")
    shown([contract])

"""Import parsing (CSV/TOML, line numbers, dry-run plan), SMA prices, monthly reports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.contracts.checks import ServerFacts, SupportCase, evaluate
from collector.contracts.importer import (
    ImportFailed,
    parse_contracts,
    parse_releases,
    plan_import,
)
from collector.contracts.incidents import apply, open_incident
from collector.contracts.plans import MAINTENANCE_SUPPORT, SMA
from collector.contracts.pricing import edition_upgrade_cost, sma_quote
from collector.contracts.reports import (
    ENTITLEMENT_KINDS,
    monitoring_gaps,
    monthly_rows,
    render_csv,
    render_json,
)
from collector.contracts.terms import Contract, Renewal

D = dt.date.fromisoformat

ERP_CSV = """\
contract_id;customer;partner;plan;licence_ids;start;installed_on;term_months;renewals;country;subdiv
V-1001;Museum;acme;maintenance-support;L1|L2;01.06.2025;;36;;DE;BY
V-1002;Bakery;acme;warranty;L3;;2026-01-15;;;;
V-1003;Shop;acme;sma;L4;2024-02-29;;;12|12;;
"""


def test_csv_as_an_erp_exports_it() -> None:
    contracts = parse_contracts(ERP_CSV, "csv")
    assert [c.id for c in contracts] == ["V-1001", "V-1002", "V-1003"]
    museum = contracts[0]
    assert museum.licence_ids == ("L1", "L2")
    assert museum.start == D("2025-06-01")  # DD.MM.YYYY
    assert museum.term_months == 36
    assert museum.calendar is not None and museum.calendar.subdiv == "BY"
    assert contracts[1].start is None and contracts[1].installed_on == D("2026-01-15")
    assert contracts[2].renewals == (Renewal(12), Renewal(12))


def test_bad_rows_are_reported_with_line_numbers_and_nothing_is_returned() -> None:
    text = (
        "contract_id,customer,partner,plan,licence_ids,start,term_months\n"  # line 1
        "A,Cust,acme,maintenance-support,L1,2026-01-01,12\n"  # line 2: fine
        "B,Cust,acme,gold,L2,2026-01-01,\n"  # line 3: unknown plan
        '"C",Cust,acme,maintenance-support,"L3\n'  # line 4: a quoted field over 2 lines
        'L4",2026-13-01,12\n'  # bad month (row started on line 4)
        "A,Cust,acme,sma,L5,2026-01-01,\n"  # line 6: duplicate id
        "E,Cust,acme,maintenance-support,L6,2026-01-01,72\n"  # line 7: 72 > 60 months
    )
    with pytest.raises(ImportFailed) as info:
        parse_contracts(text, "csv")
    got = [(e.line, e.field) for e in info.value.errors]
    assert got == [(3, "plan"), (4, "start"), (6, "contract_id"), (7, "term_months")]
    assert "line 3, plan: unknown plan 'gold'" in str(info.value)


def test_toml_contracts_and_errors() -> None:
    text = """
[[contract]]
contract_id = "T-1"
customer = "Airport"
partner = "acme"
plan = "premium-24x7"
licence_ids = ["P1", "P2"]
start = 2026-01-01
timezone = "America/New_York"
country = "US"
hours = "08:00-18:00"

[[contract]]
contract_id = "T-2"
customer = "Airport"
partner = "acme"
plan = "sma"
licence_ids = ["P3"]
start = "2026-02-01"
list_prices = { base = 1000, lpr = 250.5 }
"""
    c1, c2 = parse_contracts(text, "toml")
    assert c1.licence_ids == ("P1", "P2")
    assert c1.calendar is not None and c1.calendar.timezone == "America/New_York"
    assert c2.list_prices == (("base", 1000.0), ("lpr", 250.5))
    bad = text.replace('start = "2026-02-01"', 'start = "someday"')
    with pytest.raises(ImportFailed) as info:
        parse_contracts(bad, "toml")
    # The second [[contract]] header is on line 13 of the text (line 1 is empty).
    assert [(e.line, e.field) for e in info.value.errors] == [(13, "start")]


def test_dry_run_plan_added_changed_removed() -> None:
    current = {c.id: c for c in parse_contracts(ERP_CSV, "csv")}
    other = Contract("X-1", "Other", "other-partner", "sma", ("L9",), start=D("2025-01-01"))
    current[other.id] = other
    new_text = (
        ERP_CSV.replace(";36;", ";48;").replace(
            "V-1002;Bakery;acme;warranty;L3;;2026-01-15;;;;\n", ""
        )
        + "V-1004;Hotel;acme;maintenance-support;L7;2026-03-01;;;;;\n"
    )
    result = plan_import(current, parse_contracts(new_text, "csv"))
    assert [c.id for c in result.added] == ["V-1004"]
    assert [(ch.contract_id, ch.fields) for _, ch in result.changed] == [
        ("V-1001", ("term_months",))
    ]
    # V-1002 is gone from acme's export; other-partner's X-1 is not in the file -> kept.
    assert [c.id for c in result.removed] == ["V-1002"]
    assert result.unchanged == 1
    assert result.to_json()["removed"] == ["V-1002"]


def test_release_catalogue() -> None:
    rel = parse_releases("product,version,released_on\nVMS,6.0,2025-11-01\nVMS,6.1,01.03.2026\n")
    assert [(r.version, r.released_on) for r in rel] == [
        ("6.0", D("2025-11-01")),
        ("6.1", D("2026-03-01")),
    ]
    with pytest.raises(ImportFailed) as info:
        parse_releases("product,version,released_on\nVMS,6.0,2025-11-01\nVMS,6.0,2026-01-01\n")
    assert info.value.errors[0].line == 3
    toml = '[[release]]\nproduct = "VMS"\nversion = "7.0"\nreleased_on = 2026-06-01\n'
    assert parse_releases(toml, "toml")[0].released_on == D("2026-06-01")


def test_sma_price_basis() -> None:
    assert SMA.pricing is not None
    prices = {"base": Decimal("10000"), "lpr": Decimal("2500"), "pos": Decimal("1200")}
    q1 = sma_quote(["base", "lpr", "lpr", "analytics"], prices, SMA.pricing)
    # 10,000 + 2,500 = 12,500 list; 19% -> 2,375.00. "analytics" has no list price.
    assert q1.list_total == Decimal("12500.00")
    assert q1.price == Decimal("2375.00")
    assert q1.unknown_modules == ("analytics",)
    # Year 2: 17% -> 2,125.00; year 5: the last rate (15%) holds -> 1,875.00.
    assert sma_quote(["base", "lpr"], prices, SMA.pricing, year=2).price == Decimal("2125.00")
    assert sma_quote(["base", "lpr"], prices, SMA.pricing, year=5).price == Decimal("1875.00")
    # Bought after the software: 19% * 1.25 = 23.75% -> 2,968.75.
    late = sma_quote(["base", "lpr"], prices, SMA.pricing, bought_with_software=False)
    assert late.price == Decimal("2968.75")
    # Edition upgrade ProBox (4,000) -> Enterprise (9,000): full credit with an active SMA
    # -> 5,000; without one no credit -> 9,000.
    assert edition_upgrade_cost(4000, 9000, True, SMA.pricing) == Decimal("5000.00")
    assert edition_upgrade_cost(4000, 9000, False, SMA.pricing) == Decimal("9000.00")


def test_monitoring_gaps() -> None:
    # Reports every 60 s over an hour except a silence from 600 s to 2400 s: the gap is
    # 1800 s long; the first 900 s of it are allowed (15 min policy) -> 900 s counted.
    reports = [float(t) for t in range(0, 3600, 60) if not 600 < t < 2400]
    assert monitoring_gaps(reports, 0.0, 3600.0, 900.0) == (1, 900.0)


def test_monthly_report_rows() -> None:
    tz = "Europe/Berlin"
    ms = Contract(
        "M-1",
        "Museum",
        "acme",
        "maintenance-support",
        ("L1",),
        start=D("2025-11-15"),
        term_months=12,
    )
    warranty = Contract("W-1", "Bakery", "acme", "warranty", ("L2",), installed_on=D("2025-09-01"))
    feb1 = dt.datetime(2026, 2, 1, tzinfo=ZoneInfo(tz)).timestamp()
    # Daily backups at 03:00 on 1..27 Feb (none on the 28th).
    backups = [feb1 + (d * 86400) + 3 * 3600 for d in range(27)]
    s1 = ServerFacts("s1", "L1", uses_monitoring=True, uses_backup=True, backups=backups)
    s2 = ServerFacts("s2", "L2", uses_monitoring=True)
    mar1 = dt.datetime(2026, 3, 1, tzinfo=ZoneInfo(tz)).timestamp()
    inc = open_incident(
        "i1",
        MAINTENANCE_SUPPORT,
        "high",
        dt.datetime(2026, 2, 4, 10, tzinfo=ZoneInfo(tz)),
        contract_id="M-1",
    )
    inc = apply(inc, "acknowledge", dt.datetime(2026, 2, 4, 11, tzinfo=ZoneInfo(tz)))
    rows = monthly_rows(
        2026,
        2,
        [s1, s2],
        [ms, warranty],
        by="customer",
        tz=tz,
        now=mar1 + 3600,
        incidents=[inc],
        report_times={"s1": [feb1 + 60 * i for i in range(40320)]},
    )
    bakery, museum = rows
    # Bakery: warranty from 1 Sept 2025 + 90 days ended 30 Nov 2025 -> all 28 February
    # days uncovered; the server sends reports without entitlement -> 1 finding.
    assert (bakery.customer, bakery.days_uncovered, bakery.days_active) == ("Bakery", 28, 0)
    assert bakery.entitlement_findings == 1
    # Museum: covered all 28 days. Daily slots from 1 Feb 00:00: 28 slots end by
    # 1 Mar 06:00 at the latest... the 28th slot (28 Feb) ends 1 Mar 00:00 + 6 h tolerance
    # = 06:00 > report time (1 Mar 00:00, the month's end) -> 27 slots counted, all met.
    assert (museum.days_active, museum.backup_slots_met, museum.backup_slots_total) == (28, 27, 27)
    # Reports every minute for 28 days exactly (40320 minutes) -> no gap.
    assert museum.monitoring_gaps == 0
    # The incident was acknowledged after 1 h of a 4 h target -> met.
    assert (museum.incidents, museum.response_met, museum.response_total) == (1, 1, 1)
    data = json.loads(render_json(rows))
    assert data[1]["backup_compliance"] == 1.0
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert parsed[0]["customer"] == "Bakery" and parsed[0]["backup_compliance"] == ""


def test_odd_toml_values_are_row_errors_not_crashes() -> None:
    import random

    odd = [
        "5",
        "-3",
        "1.5",
        "true",
        '""',
        "[]",
        "[1, {a = 1}]",
        '{a = "x"}',
        '"2026-02-30"',
        "2026-01-01T10:00:00Z",
        '"Mars/Base"',
        '"25:00-26:00"',
        '"12|zz"',
        '{base = "x"}',
    ]
    keys = [
        "contract_id",
        "customer",
        "partner",
        "plan",
        "licence_ids",
        "start",
        "term_months",
        "auto_renew",
        "renewals",
        "cancelled_on",
        "timezone",
        "hours",
        "country",
        "list_prices",
        "bought_with_software",
        "term_days",
        "ends_on",
    ]
    rnd = random.Random(11)
    refused = 0
    for _ in range(300):
        table = {
            "contract_id": '"X"',
            "customer": '"C"',
            "partner": '"p"',
            "plan": '"sma"',
            "licence_ids": '["L"]',
            "start": "2026-01-01",
        }
        for k in rnd.sample(keys, rnd.randint(1, 3)):
            table[k] = rnd.choice(odd)
        text = "[[contract]]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())
        try:
            parse_contracts(text, "toml")
        except ImportFailed as exc:  # anything else escaping would fail the test
            assert all(e.line == 1 for e in exc.errors)
            refused += 1
    assert refused > 150  # most of these tables are wrong somewhere


def test_monitoring_gaps_count_only_where_history_is_kept() -> None:
    tz = "Europe/Berlin"
    ms = Contract("M-2", "Zoo", "acme", "maintenance-support", ("L5",), start=D("2026-01-01"))
    feb15 = dt.datetime(2026, 2, 15, tzinfo=ZoneInfo(tz)).timestamp()
    mar1 = dt.datetime(2026, 3, 1, tzinfo=ZoneInfo(tz)).timestamp()
    # Reports every minute from 15 Feb (older history pruned) to the month's end.
    times = [feb15 + 60 * i for i in range(int((mar1 - feb15) // 60))]
    s = ServerFacts("z1", "L5", uses_monitoring=True)
    kwargs = {"tz": tz, "now": mar1, "report_times": {"z1": times}}
    (known,) = monthly_rows(2026, 2, [s], [ms], reports_known_from=feb15, **kwargs)
    assert known.monitoring_gaps == 0
    # Without knowing where history starts, 1..15 Feb looks like one long silence:
    # 14 days minus the 15-minute allowance.
    (naive,) = monthly_rows(2026, 2, [s], [ms], **kwargs)
    assert (naive.monitoring_gaps, naive.monitoring_gap_seconds) == (1, 14 * 86400 - 900)


def test_counts_start_at_enrollment_and_contract_start_not_the_first_of_the_month() -> None:
    tz = "Europe/Berlin"
    zone = ZoneInfo(tz)
    mar1 = dt.datetime(2026, 3, 1, tzinfo=zone).timestamp()
    # Enrolled 20 Feb 10:00 under a contract from 1 Jan; daily backups at 03:00 from 21 Feb.
    enrolled = dt.datetime(2026, 2, 20, 10, tzinfo=zone).timestamp()
    backups = [dt.datetime(2026, 2, d, 3, tzinfo=zone).timestamp() for d in range(21, 29)]
    ms = Contract("M-1", "Museum", "acme", "maintenance-support", ("L1",), start=D("2026-01-01"))
    s1 = ServerFacts("s1", "L1", enrolled_at=enrolled, uses_backup=True, backups=backups)
    # A second server enrolled long ago whose contract starts 25 Feb.
    late = Contract("M-2", "Museum", "acme", "maintenance-support", ("L2",), start=D("2026-02-25"))
    s2 = ServerFacts("s2", "L2", enrolled_at=mar1 - 400 * 86400)
    (row,) = monthly_rows(2026, 2, [s1, s2], [ms, late], tz=tz, now=mar1)
    # Server-days: 20..28 Feb = 9 for s1, 25..28 Feb = 4 for s2; none before they counted.
    assert (row.server_days, row.days_active, row.days_uncovered) == (13, 13, 0)
    # s1's daily slots from 20 Feb 10:00: those ending (+6 h) by 1 Mar 00:00 are the 8
    # starting 20..27 Feb 10:00, each met by the next morning's 03:00 backup. s2's slots
    # from 25 Feb 00:00: 25, 26, 27 Feb (28 Feb's ends 1 Mar 06:00) -> 3, none met.
    assert (row.backup_slots_met, row.backup_slots_total) == (8, 11)


def test_the_monthly_report_reads_per_server_and_per_incident() -> None:
    tz = "Europe/Berlin"
    zone = ZoneInfo(tz)
    mar1 = dt.datetime(2026, 3, 1, tzinfo=zone).timestamp()
    ms = Contract("M-1", "Museum", "acme", "maintenance-support", ("L1",), start=D("2026-01-01"))
    enrolled = dt.datetime(2026, 2, 10, 9, tzinfo=zone).timestamp()
    backups = [dt.datetime(2026, 2, d, 2, tzinfo=zone).timestamp() for d in range(11, 29)]
    s1 = ServerFacts("s1", "L1", enrolled_at=enrolled, uses_backup=True, backups=backups)
    # High: 4 business hours from Wed 4 Feb 10:00 -> due 14:00; answered 16:00: missed.
    late = open_incident(
        "i1",
        MAINTENANCE_SUPPORT,
        "high",
        dt.datetime(2026, 2, 4, 10, tzinfo=zone),
        contract_id="M-1",
        server_id="s1",
        title="camera down: door",
    )
    late = apply(late, "acknowledge", dt.datetime(2026, 2, 4, 16, tzinfo=zone))
    # Medium: 8 business hours from Mon 9 Feb 10:00 -> due Tue 10:00; answered 11:00 Mon.
    kept = open_incident(
        "i2",
        MAINTENANCE_SUPPORT,
        "medium",
        dt.datetime(2026, 2, 9, 10, tzinfo=zone),
        contract_id="M-1",
        server_id="s1",
    )
    kept = apply(kept, "acknowledge", dt.datetime(2026, 2, 9, 11, tzinfo=zone))
    (row,) = monthly_rows(2026, 2, [s1], [ms], tz=tz, now=mar1, incidents=[late, kept])
    (server,) = row.server_details
    # 10..28 Feb = 19 days; daily slots from 10 Feb 09:00, the 18 ending (+6 h) by 1 Mar
    # 00:00 (10..27 Feb), each met by the next night's 02:00 backup.
    assert server == {
        "server_id": "s1",
        "contract_id": "M-1",
        "plan": "Maintenance & Support",
        "counted_from": "2026-02-10",
        "days_active": 19,
        "days_grace": 0,
        "days_uncovered": 0,
        "backup_slots_met": 18,
        "backup_slots_total": 18,
    }
    first, second = row.incident_details
    assert first["response"]["kept"] is False
    assert first["response"]["reason"] == (
        "answered 2026-02-04 16:00 CET, due 2026-02-04 14:00 CET (4 business hours)"
    )
    assert second["response"] == {
        "target": "8 business hours",
        "due": "2026-02-10 10:00 CET",
        "status": "met",
        "kept": True,
        "reason": "",
    }
    assert first["resolution"]["status"] == "none"  # maintenance has no resolution target
    # The CSV stays one line per customer; the details are in the JSON.
    assert "server_details" not in render_csv([row]).splitlines()[0]
    assert json.loads(render_json([row]))[0]["server_details"][0]["days_active"] == 19


def test_a_contract_change_mid_month_counts_each_part_by_its_own_plan() -> None:
    tz = "Europe/Berlin"
    zone = ZoneInfo(tz)
    mar1 = dt.datetime(2026, 3, 1, tzinfo=zone).timestamp()
    ms = Contract(
        "M-1",
        "Museum",
        "acme",
        "maintenance-support",
        ("L1",),
        start=D("2025-03-01"),
        ends_on=D("2026-02-15"),
    )
    premium = Contract("P-1", "Museum", "acme", "premium-24x7", ("L1",), start=D("2026-02-15"))
    # Daily at 02:00 to 14 Feb, then every 6 h from 15 Feb 02:00.
    backups = [dt.datetime(2026, 2, d, 2, tzinfo=zone).timestamp() for d in range(1, 15)]
    t = dt.datetime(2026, 2, 15, 2, tzinfo=zone).timestamp()
    while t < mar1:
        backups.append(t)
        t += 6 * 3600
    s1 = ServerFacts("s1", "L1", enrolled_at=mar1 - 400 * 86400, uses_backup=True, backups=backups)
    (row,) = monthly_rows(2026, 2, [s1], [ms, premium], tz=tz, now=mar1)
    # Maintenance, 1..14 Feb: daily slots whose end + 6 h falls by 15 Feb 00:00: those of
    # 1..13 Feb = 13, all met. Premium, 15 Feb 00:00 to 1 Mar: 6-hour slots starting up to
    # 28 Feb 16:00 (+ 8 h = 1 Mar 00:00): 328 h / 6 + 1 = 55, all met by 02/08/14/20 h.
    assert (row.backup_slots_met, row.backup_slots_total) == (68, 68)
    assert (row.days_active, row.days_uncovered) == (28, 0)


_PLANS = ("warranty", "maintenance-support", "sma", "premium-24x7")


@st.composite
def _fleet(draw: st.DrawFn) -> tuple[list[ServerFacts], list[Contract], list[SupportCase]]:
    """Servers (monitored or not, backing up or not, moved to other hardware, on some
    version) and contracts of every plan starting before, during or after the month."""
    mar1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
    n = draw(st.integers(1, 6))
    servers, contracts, cases = [], [], []
    for i in range(n):
        lic = f"L{i}"
        servers.append(
            ServerFacts(
                server_id=f"s{i}",
                licence_id=lic,
                machine_id=f"m{i}",
                licensed_machine_id=draw(st.sampled_from([None, f"m{i}", "elsewhere"])),
                installed_on=dt.date(2025, 6, 1),
                enrolled_at=mar1 - 400 * 86400,
                last_seen=mar1 - draw(st.sampled_from([60, 86400 * 3])),
                uses_monitoring=draw(st.booleans()),
                uses_backup=draw(st.booleans()),
                product="VMS",
                version=draw(st.sampled_from(["", "6.0", "7.0"])),
                backups=[mar1 - 86400 * k for k in range(draw(st.integers(0, 30)), 0, -1)],
            )
        )
        for j in range(draw(st.integers(0, 2))):
            contracts.append(
                Contract(
                    id=f"C{i}{j}",
                    customer=f"cust{i % 2}",
                    partner="acme",
                    plan=draw(st.sampled_from(_PLANS)),
                    licence_ids=(lic,),
                    start=dt.date(2026, 2, 1) + dt.timedelta(days=draw(st.integers(-800, 40))),
                )
            )
            if draw(st.booleans()):
                cases.append(SupportCase(f"K{i}{j}", f"C{i}{j}", mar1 - 5 * 86400, f"s{i}"))
    return servers, contracts, cases


@settings(max_examples=40, deadline=None)
@given(_fleet())
def test_the_report_asks_only_for_entitlement_findings_and_gets_the_same(
    fleet: tuple[list[ServerFacts], list[Contract], list[SupportCase]],
) -> None:
    servers, contracts, cases = fleet
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp() - 1
    releases = {("VMS", "6.0"): dt.date(2025, 1, 1), ("VMS", "7.0"): dt.date(2026, 2, 20)}
    every = evaluate(servers, contracts, at, releases=releases, cases=cases)
    only = evaluate(servers, contracts, at, releases=releases, cases=cases, entitlements_only=True)
    assert [f for f in only if f.kind in ENTITLEMENT_KINDS] == [
        f for f in every if f.kind in ENTITLEMENT_KINDS
    ]
    assert len(only) <= len(every)

"""The fleet-wide coverage answers are the per-server answers.

The fleet view computes every server's covering contract in one pass (one query for the
partner's contracts, one for the enrollment dates, each term evaluated once), and the
monthly report chooses a server's contract once per period between term boundaries rather
than once per day. Both must give exactly what asking for one server on one day gives
(:func:`collector.contracts.covering.covering_contract`,
:func:`collector.contracts.terms.best_contract`), on fleets varied by hypothesis: every
plan, fixed and auto-renewing terms, renewals, cancellations, early ends, warranties dated
by their server's enrollment, licences shared by several contracts, another partner's
contract naming the same licence, servers no contract covers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import secrets_store
from collector.contracts import repository as repo
from collector.contracts.plans import PRESETS
from collector.contracts.reports import coverage_periods
from collector.contracts.service import coverage_by_server
from collector.contracts.terms import Contract, Coverage, Renewal, best_contract
from collector.health import servers
from harness.database import empty_collector_database

NOW = dt.datetime(2026, 3, 14, 10, 0, tzinfo=dt.UTC).timestamp()
LICENCES = [f"LIC-{i}" for i in range(8)]

days = st.dates(dt.date(2024, 1, 1), dt.date(2027, 6, 30))


@st.composite
def contracts(draw: Any, cid: str, partner: str) -> Contract:
    """One contract with any mix of the optional term fields."""
    length = draw(st.sampled_from(["plan", "months", "days"]))
    start = draw(st.none() | days)
    return Contract(
        id=cid,
        customer=draw(st.sampled_from(["bakery", "garage", "school"])),
        partner=partner,
        # Warranties without an installation date (dated by enrollment) drawn more often.
        plan=draw(st.sampled_from(["warranty", *sorted(PRESETS)])),
        licence_ids=tuple(draw(st.lists(st.sampled_from(LICENCES), min_size=1, max_size=3))),
        start=start,
        installed_on=draw(days) if draw(st.integers(0, 3)) == 0 else None,
        term_months=draw(st.integers(1, 36)) if length == "months" else None,
        term_days=draw(st.integers(1, 400)) if length == "days" else None,
        auto_renew=draw(st.none() | st.booleans()),
        notice_days=draw(st.none() | st.integers(0, 90)),
        grace_days=draw(st.none() | st.integers(0, 60)),
        renewals=tuple(Renewal(m) for m in draw(st.lists(st.integers(1, 24), max_size=2))),
        cancelled_on=draw(st.none() | days),
        ends_on=draw(st.none() | days),
    )


@st.composite
def contract_lists(draw: Any, partner: str = "acme", max_size: int = 4) -> list[Contract]:
    n = draw(st.integers(1, max_size))
    return [draw(contracts(f"C-{i}", partner)) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(covering=contract_lists(), first=days, length=st.integers(0, 400))
def test_periods_choose_what_each_day_chooses(
    covering: list[Contract], first: dt.date, length: int
) -> None:
    last = first + dt.timedelta(days=length)
    periods = coverage_periods(covering, first, last)
    each_day = []
    for a, b, best in periods:
        assert a < b
        each_day.extend((a + dt.timedelta(days=i), best) for i in range((b - a).days))
    expected = [
        (first + dt.timedelta(days=i), best_contract(covering, first + dt.timedelta(days=i)))
        for i in range(length + 1)
    ]
    assert each_day == expected


def per_server_answer(conn: Any, partner: str, licence: str | None) -> dict[str, Any]:
    """What the fleet view showed before: the covering contract looked up for one server
    (as :func:`collector.contracts.covering.covering_contract` did, query by query)."""
    found = [_dated(conn, c) for c in repo.contracts_for_licence(conn, partner, licence or "")]
    if not licence or not found:
        return {"coverage": "none"}
    zone = ZoneInfo(found[0].calendar_spec().timezone)
    chosen = best_contract(found, dt.datetime.fromtimestamp(NOW, zone).date())
    assert chosen is not None
    c, term, status = chosen
    today = dt.datetime.fromtimestamp(NOW, ZoneInfo(c.calendar_spec().timezone)).date()
    deadline = term.last_day_to_cancel(today) if status is Coverage.ACTIVE else None
    return {
        "coverage": status.value,
        "contract_id": c.id,
        "plan": c.plan,
        "customer": c.customer,
        "last_covered_day": None
        if term.end is None
        else (term.end - dt.timedelta(days=1)).isoformat(),
        "days_left": None if term.end is None else (term.end - today).days,
        "last_day_to_cancel": None if deadline is None else deadline.isoformat(),
    }


def _dated(conn: Any, c: Contract) -> Contract:
    """A warranty without an installation date dated by the first enrollment of a server
    with one of its licences, asked for this one contract."""
    if c.installed_on is not None or PRESETS[c.plan].term.anchor != "installation":
        return c
    marks = ", ".join("?" for _ in c.licence_ids)
    (first,) = conn.execute(
        "SELECT MIN(s.enrolled_at) FROM servers s JOIN partners p ON p.id = s.partner_id "
        f"WHERE p.name = ? AND s.revoked_at IS NULL AND s.licence_id IN ({marks})",
        (c.partner, *c.licence_ids),
    ).fetchone()
    if first is None:
        return c
    return dataclasses.replace(c, installed_on=dt.datetime.fromtimestamp(first, dt.UTC).date())


fleets = st.fixed_dictionaries(
    {
        "mine": contract_lists("acme", max_size=12),
        "theirs": contract_lists("other", max_size=3),
        "servers": st.lists(
            st.tuples(st.none() | st.sampled_from(LICENCES), st.integers(0, 900)),
            min_size=1,
            max_size=12,
        ),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets)
def test_fleet_coverage_is_each_servers_covering_contract(fleet: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = empty_collector_database(Path(tmp) / "vigil.db")  # a fresh one per example
        try:
            db.write_sync(lambda conn: _fill(conn, fleet))
            for partner in ("acme", None):
                fast = db.read_sync(lambda conn, p=partner: coverage_by_server(conn, NOW, p))
                slow = db.read_sync(lambda conn, p=partner: _per_server(conn, p))
                assert fast == slow
        finally:
            db.close()


def _fill(conn: Any, fleet: dict[str, Any]) -> None:
    ids = {name: secrets_store.add_partner(conn, name).id for name in ("acme", "other")}
    for i, (licence, days_ago) in enumerate(fleet["servers"]):
        for name, pid in ids.items():
            servers.register(
                conn,
                pid,
                hostname=f"{name}-{i}",
                machine_id=f"{name}-m{i}",
                licence_id=licence,
                public_key=bytes([i]) * 32,
                agent_version="1",
                os="debian",
                now=NOW - days_ago * 86400.0,
            )
    for c in [*fleet["mine"], *fleet["theirs"]]:
        repo.record_version(conn, c.id, c.partner, c, NOW - 86400, "test")


def _per_server(conn: Any, partner: str | None) -> dict[str, dict[str, Any]]:
    sql = (
        "SELECT s.id, s.licence_id, p.name FROM servers s JOIN partners p ON p.id = s.partner_id "
        "WHERE s.revoked_at IS NULL"
    )
    rows = conn.execute(sql).fetchall()
    return {r[0]: per_server_answer(conn, r[2], r[1]) for r in rows if partner in (None, r[2])}


def test_equal_contracts_choose_the_same_whatever_the_order_they_are_read_in() -> None:
    """Two contracts of one licence that rank and end alike (here both not started yet):
    the one chosen must not depend on the order a query returned them in."""
    start = dt.date(2027, 1, 1)
    a, b = (
        Contract(
            id=cid,
            customer="bakery",
            partner="acme",
            plan="maintenance-support",
            licence_ids=("LIC-0",),
            start=start,
        )
        for cid in ("C-10", "C-9")
    )
    day = dt.date(2026, 3, 14)
    first, second = best_contract([a, b], day), best_contract([b, a], day)
    assert first is not None and second is not None
    assert first[2] is Coverage.PENDING and first[0].id == second[0].id == "C-10"

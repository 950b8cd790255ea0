"""Contracts as data, their terms, and the coverage status on any day.

A term runs over whole local days: ``[start, end)`` with ``end`` exclusive. A term of N
months starting on day D ends before the same day number N months later; when that day
does not exist (a 1-year term from 29 February) the term covers the whole last month and
the next period starts on the 1st of the following month (German BGB §188(3); a customer
who bought on 29 February 2024 is covered through 28 February 2025). Every boundary is
computed from the anchor, never from the previous boundary, so renewals do not drift:
the fourth yearly period from 29 Feb 2024 starts on 29 Feb 2028 again.

History: every change of a contract is a new :class:`ContractVersion` with the instant it
became the record (``valid_from``). Checks evaluate the *current* version on any past day,
so a backdated renewal clears findings computed before it was entered;
:func:`version_at` gives the version as known at an earlier instant.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from collector.contracts.calendar import CalendarSpec
from collector.contracts.plans import PRESETS, Plan, get_plan


class Coverage(enum.StrEnum):
    PENDING = "pending"
    """Before the term starts (or the installation date is not known yet)."""
    ACTIVE = "active"
    GRACE = "grace"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day number ``months`` later; a missing day rolls to the 1st of the next
    month (so a period from 31 Jan or 29 Feb covers its whole last month)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    last = _DAYS_IN_MONTH[month]
    if month == 2 and _calendar.isleap(year):
        last = 29
    if day.day <= last:
        return dt.date(year, month, day.day)
    return dt.date(year, month, last) + dt.timedelta(days=1)


@dataclass(frozen=True)
class Renewal:
    """An explicit renewal of a fixed-term contract by ``months``."""

    months: int
    agreed_on: dt.date | None = None


@dataclass(frozen=True)
class Contract:
    """One contract. ``None`` in an optional term field means "the plan's default"."""

    id: str
    customer: str
    partner: str
    plan: str
    licence_ids: tuple[str, ...]
    start: dt.date | None = None
    """Start of the term; for plans anchored at installation, ``installed_on`` wins."""
    installed_on: dt.date | None = None
    term_months: int | None = None
    term_days: int | None = None
    auto_renew: bool | None = None
    notice_days: int | None = None
    grace_days: int | None = None
    renewals: tuple[Renewal, ...] = ()
    cancelled_on: dt.date | None = None
    """The day the cancellation was received."""
    ends_on: dt.date | None = None
    """Agreed early end (exclusive), overriding the computed end; e.g. a termination."""
    calendar: CalendarSpec | None = None
    list_prices: tuple[tuple[str, float], ...] = ()
    """Module -> list price, for the SMA price basis (optional)."""
    sma_bought_with_software: bool = True

    def plan_obj(self) -> Plan:
        return get_plan(self.plan)

    def calendar_spec(self) -> CalendarSpec:
        return self.calendar or self.plan_obj().calendar


@dataclass(frozen=True)
class ContractVersion:
    valid_from: dt.datetime
    contract: Contract | None
    """``None`` marks the contract as removed from that instant on."""
    note: str = ""


def version_at(history: Sequence[ContractVersion], instant: dt.datetime) -> Contract | None:
    """The contract as recorded at ``instant`` (the last version with valid_from <= it)."""
    found: Contract | None = None
    for v in sorted(history, key=lambda v: v.valid_from):
        if v.valid_from <= instant:
            found = v.contract
    return found


@dataclass(frozen=True)
class Term:
    """The evaluated term of a contract."""

    anchor: dt.date | None
    end: dt.date | None
    """Exclusive end of coverage; ``None`` = open-ended (auto-renewing, not cancelled)."""
    grace_until: dt.date | None
    """Exclusive end of the grace period (== end when there is none)."""
    cancelled: bool
    auto_renew: bool
    period_boundaries: tuple[dt.date, ...] = field(default=())
    notice_days: int = 0
    renewal_months: int = 12
    initial_months: int = 0
    initial_days: int = 0

    def status(self, day: dt.date) -> Coverage:
        """Coverage on local day ``day``."""
        if self.anchor is None or day < self.anchor:
            return Coverage.PENDING
        if self.end is None or day < self.end:
            return Coverage.ACTIVE
        if self.cancelled:
            return Coverage.CANCELLED
        if self.grace_until is not None and day < self.grace_until:
            return Coverage.GRACE
        return Coverage.EXPIRED

    def period_end_after(self, day: dt.date) -> dt.date | None:
        """Exclusive end of the period containing ``day`` (auto-renewing contracts)."""
        if self.anchor is None:
            return None
        if not self.auto_renew:
            return self.end
        return _boundary_after(self, day)

    def last_day_to_cancel(self, day: dt.date) -> dt.date | None:
        """For an auto-renewing contract not yet cancelled: the last day a cancellation
        received still ends it at the end of the current period."""
        if not self.auto_renew or self.cancelled or self.anchor is None:
            return None
        end = _boundary_after(self, day)
        deadline = end - dt.timedelta(days=1 + self.notice_days)
        if deadline < day:  # too late for this period: the next one
            end = _boundary_after(self, end)
            deadline = end - dt.timedelta(days=1 + self.notice_days)
        return deadline


def _boundary(term: Term, k: int) -> dt.date:
    """Start of period k (k=0 is the anchor), always computed from the anchor."""
    assert term.anchor is not None
    if k == 0:
        return term.anchor
    if term.initial_days:
        first = term.anchor + dt.timedelta(days=term.initial_days)
        return add_months(first, (k - 1) * term.renewal_months) if k > 1 else first
    return add_months(term.anchor, term.initial_months + (k - 1) * term.renewal_months)


def _boundary_after(term: Term, day: dt.date) -> dt.date:
    """The first period boundary strictly after ``day``."""
    k = 1
    # Jump close first: periods are at least a month long.
    if term.renewal_months > 0 and term.anchor is not None and day > term.anchor:
        months = (day.year - term.anchor.year) * 12 + day.month - term.anchor.month
        k = max(1, (months - term.initial_months) // max(1, term.renewal_months))
    while _boundary(term, k) <= day:
        k += 1
    while k > 1 and _boundary(term, k - 1) > day:
        k -= 1
    return _boundary(term, k)


_TERMS: dict[Contract, Term] = {}
_TERMS_MAX = 100_000
"""Evaluated terms by contract, at most this many (then dropped and filled again)."""


def evaluate_term(contract: Contract, plan: Plan | None = None) -> Term:
    """The term of ``contract`` under its plan's rules.

    A term depends only on the contract (immutable) and its preset plan, so under the
    contract's own plan it is computed once per distinct contract and kept: the fleet,
    the contracts page and every day of a monthly report ask for the same terms again.
    """
    if plan is not None and plan is not PRESETS.get(contract.plan):
        return _evaluate_term(contract, plan)
    term = _TERMS.get(contract)
    if term is None:
        term = _evaluate_term(contract, contract.plan_obj())
        if len(_TERMS) >= _TERMS_MAX:
            _TERMS.clear()
        _TERMS[contract] = term
    return term


def _evaluate_term(contract: Contract, plan: Plan) -> Term:
    rules = plan.term
    anchor = (
        contract.installed_on or contract.start
        if rules.anchor == "installation"
        else contract.start or contract.installed_on
    )
    auto = rules.auto_renew if contract.auto_renew is None else contract.auto_renew
    notice = rules.notice_days if contract.notice_days is None else contract.notice_days
    grace = rules.grace_days if contract.grace_days is None else contract.grace_days
    if contract.term_days is not None or (contract.term_months is None and rules.length_days):
        init_days = contract.term_days if contract.term_days is not None else rules.length_days
        init_months = 0
    else:
        init_days = 0
        init_months = (
            contract.term_months if contract.term_months is not None else rules.length_months
        )
    term = Term(
        anchor=anchor,
        end=None,
        grace_until=None,
        cancelled=contract.cancelled_on is not None,
        auto_renew=auto,
        notice_days=notice,
        renewal_months=rules.renewal_months if auto else 12,
        initial_months=init_months,
        initial_days=init_days,
    )
    if anchor is None:
        return term
    if auto:
        if contract.cancelled_on is None:
            end: dt.date | None = None
        else:
            # Ends at the first period end the cancellation reached in time for.
            end = _boundary_after(term, max(anchor, contract.cancelled_on))
            while end - dt.timedelta(days=1 + notice) < contract.cancelled_on:
                end = _boundary_after(term, end)
    else:
        end = _boundary(term, 1)
        extra = sum(r.months for r in contract.renewals)
        if extra:
            end = add_months(end, extra) if init_days else add_months(anchor, init_months + extra)
    if contract.ends_on is not None and (end is None or contract.ends_on < end):
        end = contract.ends_on
    cancelled = contract.cancelled_on is not None or contract.ends_on is not None
    grace_until = None if end is None else (end if cancelled else end + dt.timedelta(days=grace))
    return Term(
        anchor=anchor,
        end=end,
        grace_until=grace_until,
        cancelled=cancelled,
        auto_renew=auto,
        notice_days=notice,
        renewal_months=term.renewal_months,
        initial_months=init_months,
        initial_days=init_days,
    )


def coverage_on(contract: Contract, day: dt.date) -> Coverage:
    return evaluate_term(contract).status(day)


_RANK = {
    Coverage.ACTIVE: 0,
    Coverage.GRACE: 1,
    Coverage.CANCELLED: 2,
    Coverage.EXPIRED: 3,
    Coverage.PENDING: 4,
}


def best_contract(
    contracts: Iterable[Contract], day: dt.date
) -> tuple[Contract, Term, Coverage] | None:
    """The contract that matters for a server on ``day`` among those covering its
    licence: active beats grace beats ended; among equals the one that ends last, and of
    those that end on the same day the smallest id (whatever order they were read in)."""
    best: tuple[int, dt.date, Contract, Term, Coverage] | None = None
    for c in contracts:
        term = evaluate_term(c)
        status = term.status(day)
        end = term.end or dt.date.max
        rank = _RANK[status]
        if (
            best is None
            or rank < best[0]
            or (rank == best[0] and end > best[1])
            or (rank == best[0] and end == best[1] and c.id < best[2].id)
        ):
            best = (rank, end, c, term, status)
    if best is None:
        return None
    return best[2], best[3], best[4]

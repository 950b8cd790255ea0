"""The contract covering a server now, and its plan: one answer for entitlements, incidents
opened from health findings and the backup policy a contract promises.

"Now" is the day in the contract's own time zone; among the partner's current contracts for
the server's licence, :func:`collector.contracts.terms.best_contract` picks the one that
counts. The plan is resolved once, from the contract, for whoever asks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from collector.contracts import repository as repo
from collector.contracts.plans import Plan, get_plan
from collector.contracts.terms import Contract, Coverage, Term, best_contract


@dataclass(frozen=True)
class Covering:
    """The contract that counts for a server today, its term and its coverage."""

    contract: Contract
    term: Term
    status: Coverage

    @cached_property
    def plan(self) -> Plan:
        """The contract's plan (``KeyError`` for a plan this collector does not know)."""
        return get_plan(self.contract.plan)

    @property
    def in_force(self) -> bool:
        """Active or in its grace period: the contract's promises hold."""
        return self.status in (Coverage.ACTIVE, Coverage.GRACE)


def covering_contract(conn: Any, partner: str, licence: str, now: float) -> Covering | None:
    """The contract of ``partner`` that counts for ``licence`` at ``now``, or None when
    none of the partner's current contracts covers the licence."""
    contracts = repo.with_enrollment_dates(conn, repo.contracts_for_licence(conn, partner, licence))
    if not contracts:
        return None
    tz = contracts[0].calendar_spec().timezone
    chosen = best_contract(contracts, dt.datetime.fromtimestamp(now, ZoneInfo(tz)).date())
    assert chosen is not None  # a non-empty list always has a best contract
    return Covering(*chosen)

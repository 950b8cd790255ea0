"""Plans (tiers) as data, and the four presets of the seeds.

A :class:`Plan` lists what a contract entitles, the backup and health policies the
collector enforces, the term rules, and the response/resolution targets per priority with
the kind of clock each counts in. Nothing here computes a time: ``sla`` does that.

Where the seeds are silent the presets choose; each choice is listed in docs/contracts.md
("Where the seeds are silent").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from collector.contracts.calendar import CalendarSpec


class ClockKind(enum.StrEnum):
    """How a target counts."""

    HOURS_24X7 = "24x7_hours"
    BUSINESS_HOURS = "business_hours"
    WORKING_DAYS = "working_days"
    NEXT_WORKING_DAY = "next_working_day"
    NEXT_RELEASE = "next_release"
    CONTINUOUS = "continuous"
    """Continuous effort until workaround or resolution: no due time."""


@dataclass(frozen=True)
class Target:
    """One target: a clock kind and an amount (hours or days; unused for the others)."""

    kind: ClockKind
    amount: float = 0.0

    @property
    def has_due_time(self) -> bool:
        return self.kind not in (ClockKind.NEXT_RELEASE, ClockKind.CONTINUOUS)

    def describe(self) -> str:
        """Plain words, e.g. ``4 business hours``."""
        n = int(self.amount) if float(self.amount).is_integer() else self.amount
        return {
            ClockKind.HOURS_24X7: f"{n} hours (24x7)",
            ClockKind.BUSINESS_HOURS: f"{n} business hours",
            ClockKind.WORKING_DAYS: f"{n} working days",
            ClockKind.NEXT_WORKING_DAY: "next working day",
            ClockKind.NEXT_RELEASE: "next release",
            ClockKind.CONTINUOUS: "continuous effort",
        }[self.kind]

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "amount": self.amount}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Target:
        return cls(ClockKind(str(data["kind"])), float(data.get("amount", 0) or 0))  # type: ignore[arg-type]


def bh(hours: float) -> Target:
    return Target(ClockKind.BUSINESS_HOURS, hours)


def wd(days: int) -> Target:
    return Target(ClockKind.WORKING_DAYS, days)


def h24(hours: float) -> Target:
    return Target(ClockKind.HOURS_24X7, hours)


NWD = Target(ClockKind.NEXT_WORKING_DAY)
NEXT_RELEASE = Target(ClockKind.NEXT_RELEASE)
CONTINUOUS = Target(ClockKind.CONTINUOUS)


@dataclass(frozen=True)
class PriorityTargets:
    """Targets for one priority. ``None`` = the plan promises nothing for it."""

    response: Target
    followup: Target | None = None
    resolution: Target | None = None


@dataclass(frozen=True)
class Entitlements:
    health_monitoring: bool = False
    online_backup: bool = False
    free_upgrades: bool = False
    priority_bug_fixes: bool = False
    licence_transfer: bool = False
    remote_maintenance: bool = False
    support_cases_limit: int | None = None
    """Cases allowed per window; ``None`` = unrestricted."""
    support_cases_window_days: int | None = None
    """Window the limit counts in; ``None`` = the whole term."""


@dataclass(frozen=True)
class Retention:
    """What the backup store keeps (restic/Kopia ``keep-*`` semantics)."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0


@dataclass(frozen=True)
class BackupPolicy:
    interval_s: int = 86400
    tolerance_s: int = 6 * 3600
    """A backup counts for its slot if it lands within the slot plus this tolerance."""
    retention: Retention = field(default_factory=Retention)


@dataclass(frozen=True)
class HealthPolicy:
    report_interval_s: int = 60
    silent_after_s: int = 15 * 60
    """A server that has not reported for longer than this is silent."""


@dataclass(frozen=True)
class TermRules:
    """How long a term runs and what happens at its end."""

    length_months: int = 12
    length_days: int = 0
    """Used instead of months when non-zero (warranty: 90 days)."""
    min_months: int = 12
    max_months: int = 12
    anchor: str = "start"
    """``start`` (the contract's start date) or ``installation`` (the server's)."""
    auto_renew: bool = False
    renewal_months: int = 12
    notice_days: int = 0
    """Cancellation must arrive this many days before the period ends."""
    grace_days: int = 0


@dataclass(frozen=True)
class SmaPricing:
    """Percentages of the list price of the modules in use (see ``pricing``)."""

    first_year_percent: float = 19.0
    later_year_percents: tuple[float, ...] = (17.0, 15.0)
    """Year 2, year 3, ...; the last value holds for every later year."""
    bought_later_surcharge_percent: float = 25.0
    """Added on top of the rate when the agreement is bought after the software."""
    edition_credit_active: float = 1.0
    """Share of the old edition's list price credited on an edition upgrade, active SMA."""
    edition_credit_inactive: float = 0.0


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    priorities: tuple[str, ...]
    targets: Mapping[str, PriorityTargets]
    entitlements: Entitlements
    backup: BackupPolicy | None
    health: HealthPolicy
    term: TermRules
    calendar: CalendarSpec = field(default_factory=CalendarSpec)
    requires_customer_acceptance: bool = False
    """Incidents stay open until the customer accepts the resolution."""
    monitoring_24x7: bool = False
    pricing: SmaPricing | None = None

    def priority(self, text: str) -> str | None:
        """The plan's spelling of a priority given in any case (``P1``/``p1``,
        ``high``/``High``), or None if the plan has no such priority."""
        for p in self.priorities:
            if p.lower() == text.strip().lower():
                return p
        return None

    def targets_for(self, priority: str) -> PriorityTargets:
        try:
            return self.targets[priority]
        except KeyError:
            raise KeyError(
                f"plan {self.name!r} has no priority {priority!r} "
                f"(choose from {', '.join(self.priorities)})"
            ) from None


HIGH_MEDIUM_LOW = ("high", "medium", "low")
P1_P4 = ("P1", "P2", "P3", "P4")

WARRANTY = Plan(
    name="warranty",
    title="Without maintenance (warranty)",
    priorities=HIGH_MEDIUM_LOW,
    targets={
        "high": PriorityTargets(response=NWD, followup=wd(2)),
        "medium": PriorityTargets(response=wd(2), followup=wd(3)),
        "low": PriorityTargets(response=wd(3), followup=wd(4)),
    },
    entitlements=Entitlements(support_cases_limit=1, support_cases_window_days=90),
    backup=None,
    health=HealthPolicy(),
    term=TermRules(
        length_months=0, length_days=90, min_months=0, max_months=0, anchor="installation"
    ),
)

MAINTENANCE_SUPPORT = Plan(
    name="maintenance-support",
    title="Maintenance & Support",
    priorities=HIGH_MEDIUM_LOW,
    targets={
        "high": PriorityTargets(response=bh(4), followup=bh(8)),
        "medium": PriorityTargets(response=bh(8), followup=wd(2)),
        "low": PriorityTargets(response=NWD, followup=wd(3)),
    },
    entitlements=Entitlements(
        health_monitoring=True,
        online_backup=True,
        free_upgrades=True,
        priority_bug_fixes=True,
        licence_transfer=True,
        remote_maintenance=True,
    ),
    backup=BackupPolicy(
        interval_s=86400,
        tolerance_s=6 * 3600,
        retention=Retention(keep_last=7, keep_daily=7, keep_weekly=4, keep_monthly=12),
    ),
    health=HealthPolicy(report_interval_s=60, silent_after_s=15 * 60),
    term=TermRules(length_months=12, min_months=12, max_months=60, grace_days=30),
)

SMA = Plan(
    name="sma",
    title="Software Maintenance Agreement",
    priorities=HIGH_MEDIUM_LOW,
    targets={
        "high": PriorityTargets(response=NWD, followup=wd(2)),
        "medium": PriorityTargets(response=wd(2), followup=wd(3)),
        "low": PriorityTargets(response=wd(3), followup=wd(4)),
    },
    entitlements=Entitlements(free_upgrades=True),
    backup=None,
    health=HealthPolicy(),
    term=TermRules(
        length_months=12,
        min_months=12,
        max_months=12,
        auto_renew=True,
        renewal_months=12,
        notice_days=90,
        grace_days=0,
    ),
    pricing=SmaPricing(),
)

PREMIUM_24X7 = Plan(
    name="premium-24x7",
    title="Premium 24x7",
    priorities=P1_P4,
    targets={
        "P1": PriorityTargets(response=h24(1), resolution=CONTINUOUS),
        "P2": PriorityTargets(response=wd(1), resolution=wd(3)),
        "P3": PriorityTargets(response=wd(2), resolution=wd(10)),
        "P4": PriorityTargets(response=wd(3), resolution=NEXT_RELEASE),
    },
    entitlements=Entitlements(
        health_monitoring=True,
        online_backup=True,
        free_upgrades=True,
        priority_bug_fixes=True,
        licence_transfer=True,
        remote_maintenance=True,
    ),
    backup=BackupPolicy(
        interval_s=6 * 3600,
        tolerance_s=2 * 3600,
        retention=Retention(keep_last=28, keep_daily=30, keep_weekly=8, keep_monthly=24),
    ),
    health=HealthPolicy(report_interval_s=60, silent_after_s=5 * 60),
    term=TermRules(length_months=12, min_months=12, max_months=60, grace_days=30),
    requires_customer_acceptance=True,
    monitoring_24x7=True,
)

PRESETS: dict[str, Plan] = {p.name: p for p in (WARRANTY, MAINTENANCE_SUPPORT, SMA, PREMIUM_24X7)}


def get_plan(name: str, extra: Mapping[str, Plan] | None = None) -> Plan:
    """A preset or a plan from ``extra`` by name; ``KeyError`` with the choices otherwise."""
    if extra and name in extra:
        return extra[name]
    try:
        return PRESETS[name]
    except KeyError:
        names = sorted({*PRESETS, *(extra or {})})
        raise KeyError(f"unknown plan {name!r} (choose from {', '.join(names)})") from None

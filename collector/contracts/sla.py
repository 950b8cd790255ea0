"""Due times of SLA targets, and the elapsed-time arithmetic incidents need.

Every target with a due time is turned into a *budget* in its clock: absolute seconds for
24x7 targets, open (business) seconds for the others. Pauses and the 50%/75% warnings are
then plain arithmetic on that budget, whatever the clock kind (see ``incidents``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from collector.contracts.calendar import UTC, BusinessCalendar, CalendarSpec, business_calendar
from collector.contracts.plans import ClockKind, Plan, Target


def due_time(
    target: Target | None, opened: dt.datetime, cal: BusinessCalendar
) -> dt.datetime | None:
    """When ``target`` is due for a case opened at ``opened`` (UTC), or ``None``."""
    if target is None or not target.has_due_time:
        return None
    if target.kind is ClockKind.HOURS_24X7:
        return cal.add_absolute_hours(opened, target.amount)
    if target.kind is ClockKind.BUSINESS_HOURS:
        return cal.add_business_hours(opened, target.amount)
    if target.kind is ClockKind.WORKING_DAYS:
        return cal.add_working_days(opened, int(target.amount))
    if target.kind is ClockKind.NEXT_WORKING_DAY:
        return cal.next_working_day_close(opened)
    raise ValueError(f"unhandled clock kind {target.kind}")


def counts_24x7(target: Target) -> bool:
    return target.kind is ClockKind.HOURS_24X7


def clock_start(target: Target, opened: dt.datetime, cal: BusinessCalendar) -> dt.datetime:
    """When the target's clock starts running (24x7: at once; else at the next opening)."""
    if counts_24x7(target):
        return opened.astimezone(UTC)
    return cal.clamp_open(opened)


def elapsed(target: Target, start: dt.datetime, end: dt.datetime, cal: BusinessCalendar) -> float:
    """Seconds of the target's clock between two instants."""
    if counts_24x7(target):
        return max(0.0, (end - start).total_seconds())
    return cal.business_seconds_between(start, end)


def advance(
    target: Target, start: dt.datetime, seconds: float, cal: BusinessCalendar
) -> dt.datetime:
    """The instant ``seconds`` of the target's clock after ``start``."""
    if counts_24x7(target):
        return start.astimezone(UTC) + dt.timedelta(seconds=seconds)
    return cal.add_business_seconds(start, seconds)


def budget(target: Target, opened: dt.datetime, cal: BusinessCalendar) -> float | None:
    """The target's length in its clock's seconds, measured for this opening time."""
    due = due_time(target, opened, cal)
    if due is None:
        return None
    return elapsed(target, clock_start(target, opened, cal), due, cal)


@dataclass(frozen=True)
class DueTimes:
    """What ``sla due`` answers. Instants are UTC; render with :meth:`to_json`."""

    plan: str
    priority: str
    opened: dt.datetime
    calendar: CalendarSpec
    response: Target
    response_due: dt.datetime | None
    followup: Target | None
    followup_due: dt.datetime | None
    resolution: Target | None
    resolution_due: dt.datetime | None

    def to_json(self) -> dict[str, object]:
        cal = business_calendar(self.calendar)

        def iso(t: dt.datetime | None) -> str | None:
            return None if t is None else cal.to_local(t).isoformat()

        return {
            "plan": self.plan,
            "priority": self.priority,
            "opened": iso(self.opened),
            "timezone": self.calendar.timezone,
            "country": self.calendar.country,
            "subdiv": self.calendar.subdiv,
            "response_target": self.response.describe(),
            "response_due": iso(self.response_due),
            "followup_target": None if self.followup is None else self.followup.describe(),
            "followup_due": iso(self.followup_due),
            "resolution_target": None if self.resolution is None else self.resolution.describe(),
            "resolution_due": iso(self.resolution_due),
        }


def due_times(
    plan: Plan, priority: str, opened: dt.datetime, calendar: CalendarSpec | None = None
) -> DueTimes:
    """Response, follow-up and resolution due times for a case of ``priority`` opened at
    ``opened`` (aware), in ``calendar`` (default: the plan's)."""
    if opened.tzinfo is None or opened.utcoffset() is None:
        raise ValueError("the opening time needs a UTC offset")
    spec = calendar or plan.calendar
    cal = business_calendar(spec)
    targets = plan.targets_for(priority)
    return DueTimes(
        plan=plan.name,
        priority=priority,
        opened=opened.astimezone(UTC),
        calendar=spec,
        response=targets.response,
        response_due=due_time(targets.response, opened, cal),
        followup=targets.followup,
        followup_due=due_time(targets.followup, opened, cal),
        resolution=targets.resolution,
        resolution_due=due_time(targets.resolution, opened, cal),
    )


def response_due(
    plan: Plan, priority: str, opened: dt.datetime, calendar: CalendarSpec | None = None
) -> dt.datetime | None:
    return due_times(plan, priority, opened, calendar).response_due


def resolution_due(
    plan: Plan, priority: str, opened: dt.datetime, calendar: CalendarSpec | None = None
) -> dt.datetime | None:
    return due_times(plan, priority, opened, calendar).resolution_due

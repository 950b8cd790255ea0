"""Incidents as a pure state machine with response/resolution clocks.

An :class:`Incident` is its opening data plus an append-only tuple of :class:`Event`;
every state and SLA figure is computed by replaying the events, so storage only keeps the
events and any past instant can be re-evaluated.

States: ``open`` -> ``acknowledged`` -> ``resolved`` -> ``closed``; ``paused`` (waiting on
the customer) from open/acknowledged and back; ``reopen`` from resolved/closed. For plans
that require customer acceptance (premium 24x7) ``resolve`` leaves the incident
``resolved`` until the customer ``accept``\\ s it; otherwise ``resolve`` closes it.

Clocks (Zendesk/JSM style): the response clock runs from opening to the first
acknowledgement, the resolution clock from opening to the last resolution. Neither counts
while paused; the resolution clock does not count while resolved (awaiting acceptance or
closed) and continues after a reopen. Budgets and pauses are in the target's own clock
(business seconds or, for 24x7 targets, real seconds), see ``sla``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from collector.contracts.calendar import UTC, BusinessCalendar, CalendarSpec, business_calendar
from collector.contracts.plans import ClockKind, Plan, Target, get_plan
from collector.contracts.sla import advance, budget, elapsed


class State(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    PAUSED = "paused"
    WORKAROUND = "workaround"
    """A workaround is in place; for a "continuous effort until a workaround" target (P1)
    the resolution clock has stopped."""
    RESOLVED = "resolved"
    CLOSED = "closed"


class Action(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGE = "acknowledge"
    PAUSE = "pause"
    RESUME = "resume"
    RESOLVE = "resolve"
    ACCEPT = "accept"
    REOPEN = "reopen"
    WORKAROUND = "workaround"
    CLEAR = "clear"
    """The finding that opened the incident cleared: resolved, awaiting acceptance."""
    CONTACT = "contact"
    """A follow-up contact of the customer: starts a follow-up response clock."""
    ANSWER = "answer"
    """The follow-up contact answered (the oldest unanswered one)."""


class TransitionError(ValueError):
    """An action not allowed in the incident's state (or dated before its last event)."""


@dataclass(frozen=True)
class Event:
    action: Action
    at: dt.datetime
    by: str = ""
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "at": self.at.isoformat(),
            "by": self.by,
            "note": self.note,
        }


@dataclass(frozen=True)
class Incident:
    id: str
    plan: str
    priority: str
    opened_at: dt.datetime
    calendar: CalendarSpec
    contract_id: str | None = None
    server_id: str | None = None
    title: str = ""
    source: str = "manual"
    """``manual`` or ``finding:<kind>`` for incidents opened by the checks."""
    events: tuple[Event, ...] = field(default=())

    def plan_obj(self) -> Plan:
        return get_plan(self.plan)


def open_incident(
    id: str,
    plan: Plan,
    priority: str,
    opened_at: dt.datetime,
    *,
    calendar: CalendarSpec | None = None,
    contract_id: str | None = None,
    server_id: str | None = None,
    title: str = "",
    source: str = "manual",
    by: str = "",
) -> Incident:
    """A new incident. ``opened_at`` is taken as given (tickets imported from another help
    desk keep their original opening time)."""
    if opened_at.tzinfo is None or opened_at.utcoffset() is None:
        raise ValueError("the opening time needs a UTC offset")
    plan.targets_for(priority)  # KeyError for an unknown priority
    opened = opened_at.astimezone(UTC)
    return Incident(
        id=id,
        plan=plan.name,
        priority=priority,
        opened_at=opened,
        calendar=calendar or plan.calendar,
        contract_id=contract_id,
        server_id=server_id,
        title=title,
        source=source,
        events=(Event(Action.OPEN, opened, by),),
    )


@dataclass(frozen=True)
class Replay:
    state: State
    acknowledged_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    response_segments: tuple[tuple[dt.datetime, dt.datetime | None], ...]
    """Intervals in which the response clock ran (``None`` = still running)."""
    resolution_segments: tuple[tuple[dt.datetime, dt.datetime | None], ...]
    workaround_at: dt.datetime | None = None
    followups: tuple[tuple[dt.datetime, dt.datetime | None], ...] = ()
    """(contacted, answered or None) per follow-up contact."""


_WORKING = (State.OPEN, State.ACKNOWLEDGED, State.PAUSED, State.WORKAROUND)

_ALLOWED: dict[Action, tuple[State, ...]] = {
    Action.ACKNOWLEDGE: (State.OPEN,),
    Action.PAUSE: (State.OPEN, State.ACKNOWLEDGED),
    Action.RESUME: (State.PAUSED,),
    Action.RESOLVE: _WORKING,
    Action.ACCEPT: (State.RESOLVED,),
    Action.REOPEN: (State.RESOLVED, State.CLOSED),
    Action.WORKAROUND: (State.OPEN, State.ACKNOWLEDGED),
    Action.CLEAR: _WORKING,
    Action.CONTACT: (*_WORKING, State.RESOLVED),
    Action.ANSWER: (*_WORKING, State.RESOLVED),
}


def replay(incident: Incident, until: dt.datetime | None = None) -> Replay:
    """State and clock segments after the events up to ``until`` (all if None)."""
    run = _Replaying(
        needs_accept=incident.plan_obj().requires_customer_acceptance,
        continuous=_resolution_is_continuous(incident),
    )
    for ev in incident.events:
        if until is not None and ev.at > until:
            break
        step = _STEPS.get(ev.action)
        if step is not None:
            step(run, ev.at)
    return Replay(
        state=run.state,
        acknowledged_at=run.ack,
        resolved_at=run.resolved,
        closed_at=run.closed,
        response_segments=tuple((s[0], s[1]) for s in run.resp),  # type: ignore[misc]
        resolution_segments=tuple((s[0], s[1]) for s in run.reso),  # type: ignore[misc]
        workaround_at=run.workaround,
        followups=tuple((f[0], f[1]) for f in run.followups),  # type: ignore[misc]
    )


_Segments = list[list[dt.datetime | None]]


@dataclass
class _Replaying:
    """An incident's state and clocks part way through its events."""

    needs_accept: bool
    continuous: bool
    state: State = State.OPEN
    before_pause: State = State.OPEN
    ack: dt.datetime | None = None
    resolved: dt.datetime | None = None
    closed: dt.datetime | None = None
    workaround: dt.datetime | None = None
    resp: _Segments = field(default_factory=list)
    reso: _Segments = field(default_factory=list)
    followups: _Segments = field(default_factory=list)


def _start(segs: _Segments, at: dt.datetime) -> None:
    if not segs or segs[-1][1] is not None:
        segs.append([at, None])


def _stop(segs: _Segments, at: dt.datetime) -> None:
    if segs and segs[-1][1] is None:
        segs[-1][1] = at


def _open(r: _Replaying, t: dt.datetime) -> None:
    _start(r.resp, t)
    _start(r.reso, t)


def _acknowledge(r: _Replaying, t: dt.datetime) -> None:
    r.ack = r.ack or t
    _stop(r.resp, t)
    r.state = State.ACKNOWLEDGED


def _pause(r: _Replaying, t: dt.datetime) -> None:
    r.before_pause = r.state
    _stop(r.resp, t)
    _stop(r.reso, t)
    r.state = State.PAUSED


def _resume(r: _Replaying, t: dt.datetime) -> None:
    r.state = r.before_pause
    if r.ack is None:
        _start(r.resp, t)
    _start(r.reso, t)


def _resolve(r: _Replaying, t: dt.datetime) -> None:
    _stop(r.resp, t)  # resolving answers the customer too
    r.ack = r.ack or t
    _stop(r.reso, t)
    r.resolved = t
    r.state = State.RESOLVED if r.needs_accept else State.CLOSED
    r.closed = None if r.needs_accept else t


def _accept(r: _Replaying, t: dt.datetime) -> None:
    r.state = State.CLOSED
    r.closed = t


def _reopen(r: _Replaying, t: dt.datetime) -> None:
    r.state = State.ACKNOWLEDGED if r.ack is not None else State.OPEN
    r.resolved = r.closed = r.workaround = None
    _start(r.reso, t)


def _workaround(r: _Replaying, t: dt.datetime) -> None:
    _stop(r.resp, t)  # a workaround answers the customer too
    r.ack = r.ack or t
    r.workaround = t
    if r.continuous:
        _stop(r.reso, t)
    r.state = State.WORKAROUND


def _clear(r: _Replaying, t: dt.datetime) -> None:
    _stop(r.resp, t)
    r.ack = r.ack or t
    _stop(r.reso, t)
    r.resolved = t
    r.state = State.RESOLVED


def _contact(r: _Replaying, t: dt.datetime) -> None:
    r.followups.append([t, None])


def _answer(r: _Replaying, t: dt.datetime) -> None:
    for f in r.followups:
        if f[1] is None:
            f[1] = t
            break


_STEPS: dict[Action, Callable[[_Replaying, dt.datetime], None]] = {
    Action.OPEN: _open,
    Action.ACKNOWLEDGE: _acknowledge,
    Action.PAUSE: _pause,
    Action.RESUME: _resume,
    Action.RESOLVE: _resolve,
    Action.ACCEPT: _accept,
    Action.REOPEN: _reopen,
    Action.WORKAROUND: _workaround,
    Action.CLEAR: _clear,
    Action.CONTACT: _contact,
    Action.ANSWER: _answer,
}
"""What each event does to the state and the clocks."""


def _resolution_is_continuous(incident: Incident) -> bool:
    """The priority's resolution target is continuous effort until a workaround (P1)."""
    try:
        target = incident.plan_obj().targets_for(incident.priority).resolution
    except KeyError:
        return False
    return target is not None and target.kind is ClockKind.CONTINUOUS


def apply(
    incident: Incident, action: Action | str, at: dt.datetime, *, by: str = "", note: str = ""
) -> Incident:
    """The incident after ``action`` at ``at``; :class:`TransitionError` if not allowed."""
    action = Action(action)
    if at.tzinfo is None or at.utcoffset() is None:
        raise TransitionError("the time of an action needs a UTC offset")
    at = at.astimezone(UTC)
    if action is Action.OPEN:
        raise TransitionError("an incident is opened only once")
    last = incident.events[-1].at
    if at < last:
        raise TransitionError(
            f"{action.value} at {at.isoformat()} is before the last event ({last.isoformat()})"
        )
    if action is Action.PAUSE and not (by.strip() and note.strip()):
        raise TransitionError("a pause records who pauses (by) and why (note)")
    if action is Action.RESUME and not by.strip():
        raise TransitionError("a resume records who resumes (by)")
    r = replay(incident)
    state = r.state
    if action is Action.ANSWER and all(f[1] is not None for f in r.followups):
        raise TransitionError("no follow-up contact is waiting for an answer")
    if state not in _ALLOWED[action]:
        if action is Action.ACCEPT and state is State.CLOSED:
            raise TransitionError("the incident is already closed")
        raise TransitionError(f"cannot {action.value} an incident that is {state.value}")
    return replace(incident, events=(*incident.events, Event(action, at, by, note)))


class ClockStatus(enum.StrEnum):
    NONE = "none"
    """No due time (next release, continuous effort, or no target)."""
    RUNNING = "running"
    WARNING_50 = "warning_50"
    WARNING_75 = "warning_75"
    BREACHED = "breached"
    PAUSED = "paused"
    MET = "met"
    MISSED = "missed"
    """Stopped, but after the due time."""


@dataclass(frozen=True)
class ClockReport:
    target: str | None
    status: ClockStatus
    due: dt.datetime | None
    warn_50: dt.datetime | None = None
    warn_75: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    used_share: float | None = None
    """Share of the budget used at ``now`` (or when stopped)."""

    def to_json(self, cal: BusinessCalendar) -> dict[str, object]:
        def iso(t: dt.datetime | None) -> str | None:
            return None if t is None else cal.to_local(t).isoformat()

        return {
            "target": self.target,
            "status": self.status.value,
            "due": iso(self.due),
            "warn_50": iso(self.warn_50),
            "warn_75": iso(self.warn_75),
            "stopped_at": iso(self.stopped_at),
            "used_share": None if self.used_share is None else round(self.used_share, 4),
        }


def _instant_at(
    target: Target,
    segments: tuple[tuple[dt.datetime, dt.datetime | None], ...],
    amount: float,
    project_from: dt.datetime,
    cal: BusinessCalendar,
) -> dt.datetime:
    """When the clock has run ``amount`` seconds: through the recorded segments, then --
    if it is stopped or paused -- projected from ``project_from`` (or the last stop, if
    later) as if it ran again from there."""
    used = 0.0
    tail = project_from
    for a, b in segments:
        if b is None:
            return advance(target, a, amount - used, cal)
        seg = elapsed(target, a, b, cal)
        if used + seg >= amount:
            return advance(target, a, amount - used, cal)
        used += seg
        tail = max(b, project_from)
    return advance(target, tail, amount - used, cal)


def _used(
    target: Target,
    segments: tuple[tuple[dt.datetime, dt.datetime | None], ...],
    now: dt.datetime,
    cal: BusinessCalendar,
) -> float:
    return sum(elapsed(target, a, min(b or now, now), cal) for a, b in segments if a < now)


def _clock(
    target: Target | None,
    opened: dt.datetime,
    segments: tuple[tuple[dt.datetime, dt.datetime | None], ...],
    stopped: dt.datetime | None,
    paused: bool,
    now: dt.datetime,
    cal: BusinessCalendar,
) -> ClockReport:
    if target is None or not target.has_due_time:
        # Continuous effort has no due time, but it is kept once it stops (workaround).
        kept = target is not None and target.kind is ClockKind.CONTINUOUS and stopped is not None
        return ClockReport(
            None if target is None else target.describe(),
            ClockStatus.MET if kept else ClockStatus.NONE,
            None,
            stopped_at=stopped,
        )
    total = budget(target, opened, cal)
    assert total is not None
    project_from = stopped if stopped is not None else now
    due = _instant_at(target, segments, total, project_from, cal)
    w50 = _instant_at(target, segments, total * 0.5, project_from, cal)
    w75 = _instant_at(target, segments, total * 0.75, project_from, cal)
    segs = segments
    at = stopped if stopped is not None else now
    used = _used(target, segs, at, cal)
    share = used / total if total else 1.0
    if stopped is not None:
        # Late in real time is late: an answer after closing on the due day used no more
        # business time than the budget, but came after the due time the customer saw.
        kept = used <= total and (due is None or stopped <= due)
        status = ClockStatus.MET if kept else ClockStatus.MISSED
    elif used >= total and now >= due:
        status = ClockStatus.BREACHED
    elif paused:
        status = ClockStatus.PAUSED
    elif share >= 0.75:
        status = ClockStatus.WARNING_75
    elif share >= 0.5:
        status = ClockStatus.WARNING_50
    else:
        status = ClockStatus.RUNNING
    return ClockReport(target.describe(), status, due, w50, w75, stopped, share)


@dataclass(frozen=True)
class IncidentStatus:
    state: State
    response: ClockReport
    resolution: ClockReport
    followups: tuple[tuple[dt.datetime, ClockReport], ...] = ()
    """Per follow-up contact: when it came and its response clock."""
    workaround_at: dt.datetime | None = None

    def to_json(self, cal: BusinessCalendar) -> dict[str, object]:
        return {
            "state": self.state.value,
            "awaiting_acceptance": self.state is State.RESOLVED,
            "workaround_at": None
            if self.workaround_at is None
            else cal.to_local(self.workaround_at).isoformat(),
            "response": self.response.to_json(cal),
            "resolution": self.resolution.to_json(cal),
            "followups": [
                {"contacted_at": cal.to_local(at).isoformat(), **clock.to_json(cal)}
                for at, clock in self.followups
            ],
        }


def status(incident: Incident, now: dt.datetime) -> IncidentStatus:
    """State and both clocks at ``now`` (events after ``now`` are ignored)."""
    now = now.astimezone(UTC)
    r = replay(incident, until=now)
    targets = incident.plan_obj().targets_for(incident.priority)
    cal = business_calendar(incident.calendar)
    paused = r.state is State.PAUSED
    resp_stop = r.acknowledged_at
    resp = _clock(
        targets.response, incident.opened_at, r.response_segments, resp_stop, paused, now, cal
    )
    reso_stop = r.resolved_at if r.state in (State.RESOLVED, State.CLOSED) else None
    if reso_stop is None and r.state is State.WORKAROUND and _resolution_is_continuous(incident):
        reso_stop = r.workaround_at
    reso = _clock(
        targets.resolution, incident.opened_at, r.resolution_segments, reso_stop, paused, now, cal
    )
    followups = tuple(
        (at, _clock(targets.followup, at, ((at, answered),), answered, False, now, cal))
        for at, answered in r.followups
    )
    return IncidentStatus(r.state, resp, reso, followups, r.workaround_at)


def incident_to_json(incident: Incident, now: dt.datetime) -> dict[str, Any]:
    cal = business_calendar(incident.calendar)
    return {
        "id": incident.id,
        "plan": incident.plan,
        "priority": incident.priority,
        "contract_id": incident.contract_id,
        "server_id": incident.server_id,
        "title": incident.title,
        "source": incident.source,
        "opened_at": cal.to_local(incident.opened_at).isoformat(),
        **status(incident, now).to_json(cal),
        "events": [e.to_json() for e in incident.events],
    }


# --- which findings open incidents, at which priority -----------------------------------

DEFAULT_PRIORITY_MAP: dict[str, str] = {
    "volume_full_48h": "high",
    "silent": "high",
    "camera_offline": "medium",
    "backup_overdue": "medium",
    "disk_failing": "high",
    "retention_below_promise": "low",
}
"""Finding kind -> generic level (high/medium/low). Kinds not listed open no incident."""

_LEVEL_TO_PREMIUM = {"critical": "P1", "high": "P1", "medium": "P2", "low": "P3"}


def priority_for(
    kind: str, plan: Plan, overrides: Mapping[str, str | None] | None = None
) -> str | None:
    """The plan priority an automatic incident for a finding of ``kind`` gets, or None.

    ``overrides`` is the partner's map (kind -> level or plan priority; None = no
    incident). Generic levels map onto P1-P4 for premium plans.
    """
    mapping: dict[str, str | None] = {**DEFAULT_PRIORITY_MAP, **(overrides or {})}
    level = mapping.get(kind)
    if level is None:
        return None
    if level in plan.priorities:
        return level
    if plan.priorities == ("P1", "P2", "P3", "P4"):
        return _LEVEL_TO_PREMIUM.get(level)
    if level in ("P1", "critical"):
        return "high"
    return {"P2": "medium", "P3": "low", "P4": "low"}.get(level)

"""Incidents: response/resolution clocks, 50%/75% warnings, breach, pause, acceptance.

Calendar: Europe/Berlin, Mon-Fri 09:00-17:00, German holidays. 2026-11-18 is a Wednesday,
2026-11-20 a Friday.
"""

from __future__ import annotations

import datetime as dt

import pytest

from collector.contracts.incidents import (
    Action,
    ClockStatus,
    State,
    TransitionError,
    apply,
    incident_to_json,
    open_incident,
    priority_for,
    status,
)
from collector.contracts.plans import MAINTENANCE_SUPPORT, PREMIUM_24X7, WARRANTY

T = dt.datetime.fromisoformat


def test_response_warnings_and_breach() -> None:
    inc = open_incident("i1", MAINTENANCE_SUPPORT, "high", T("2026-11-18T10:00+01:00"))
    # 4 business hours from Wed 10:00 -> due 14:00; 50% at 12:00, 75% at 13:00.
    s = status(inc, T("2026-11-18T11:00+01:00"))
    assert s.response.due == T("2026-11-18T14:00+01:00")
    assert s.response.warn_50 == T("2026-11-18T12:00+01:00")
    assert s.response.warn_75 == T("2026-11-18T13:00+01:00")
    assert s.response.status is ClockStatus.RUNNING
    assert status(inc, T("2026-11-18T12:30+01:00")).response.status is ClockStatus.WARNING_50
    assert status(inc, T("2026-11-18T13:30+01:00")).response.status is ClockStatus.WARNING_75
    assert status(inc, T("2026-11-18T14:01+01:00")).response.status is ClockStatus.BREACHED
    # No resolution target in maintenance & support.
    assert s.resolution.status is ClockStatus.NONE
    # Acknowledged at 11:00 -> response met; resolve closes (no acceptance needed).
    acked = apply(inc, "acknowledge", T("2026-11-18T11:00+01:00"))
    assert status(acked, T("2026-11-19T12:00+01:00")).response.status is ClockStatus.MET
    done = apply(acked, Action.RESOLVE, T("2026-11-18T16:00+01:00"))
    assert status(done, T("2026-11-18T16:00+01:00")).state is State.CLOSED


def test_an_answer_after_closing_on_the_due_day_is_late() -> None:
    # Warranty high: next working day. Opened Fri 13 Feb 16:00 -> due Mon 16 Feb 17:00.
    inc = open_incident("i9", WARRANTY, "high", T("2026-02-13T16:00+01:00"))
    later = T("2026-03-01T00:00+01:00")
    on_time = apply(inc, "acknowledge", T("2026-02-16T17:00+01:00"))
    assert status(on_time, later).response.status is ClockStatus.MET
    # 18:00 uses no business time beyond 17:00, but it is an hour after the due time.
    late = apply(inc, "acknowledge", T("2026-02-16T18:00+01:00"))
    assert status(late, later).response.due == T("2026-02-16T17:00+01:00")
    assert status(late, later).response.status is ClockStatus.MISSED
    # Over the weekend (no business time at all) an answer is early, so met.
    early = apply(inc, "acknowledge", T("2026-02-14T12:00+01:00"))
    assert status(early, later).response.status is ClockStatus.MET


def test_pause_while_waiting_on_customer() -> None:
    inc = open_incident("i2", MAINTENANCE_SUPPORT, "high", T("2026-11-18T10:00+01:00"))
    with pytest.raises(TransitionError, match="who pauses"):
        apply(inc, "pause", T("2026-11-18T11:00+01:00"))  # a pause says who and why
    inc = apply(
        inc, "pause", T("2026-11-18T11:00+01:00"), by="desk", note="waiting for the log files"
    )
    # Paused after 1 h of the 4 h budget: at 15:00 (after the unpaused due time 14:00)
    # the clock is paused, not breached.
    s = status(inc, T("2026-11-18T15:00+01:00"))
    assert s.state is State.PAUSED
    assert s.response.status is ClockStatus.PAUSED
    inc = apply(inc, "resume", T("2026-11-19T09:30+01:00"), by="customer", note="logs sent")
    assert [(e.by, e.note) for e in inc.events[1:]] == [
        ("desk", "waiting for the log files"),
        ("customer", "logs sent"),
    ]
    # 3 h left from Thursday 09:30 -> due Thursday 12:30 (the paused business time,
    # Wed 11-17 and Thu 09:00-09:30, does not count).
    s = status(inc, T("2026-11-19T10:00+01:00"))
    assert s.response.due == T("2026-11-19T12:30+01:00")
    assert s.state is State.OPEN
    # 75% of 4 h = 3 h used: 1 h Wednesday + 2 h from Thursday 09:30 -> 11:30.
    assert s.response.warn_75 == T("2026-11-19T11:30+01:00")
    assert status(inc, T("2026-11-19T12:31+01:00")).response.status is ClockStatus.BREACHED


def test_premium_24x7_response_and_customer_acceptance() -> None:
    p1 = open_incident("i3", PREMIUM_24X7, "P1", T("2026-11-21T03:00+01:00"))
    # P1: 1 hour around the clock, Saturday night -> due 04:00; continuous effort -> no
    # resolution due time.
    s = status(p1, T("2026-11-21T03:10+01:00"))
    assert s.response.due == T("2026-11-21T04:00+01:00")
    assert s.resolution.status is ClockStatus.NONE
    assert s.resolution.due is None
    p1 = apply(p1, "acknowledge", T("2026-11-21T03:20+01:00"))
    assert status(p1, T("2026-11-21T05:00+01:00")).response.status is ClockStatus.MET

    p2 = open_incident("i4", PREMIUM_24X7, "P2", T("2026-11-20T16:00+01:00"))
    # Resolution 3 business days from Fri 16:00 -> Wed 25 Nov 16:00: a budget of
    # 1 h Fri + 8 h Mon + 8 h Tue + 7 h Wed = 24 business hours.
    assert status(p2, T("2026-11-20T16:30+01:00")).resolution.due == T("2026-11-25T16:00+01:00")
    p2 = apply(p2, "resolve", T("2026-11-23T10:00+01:00"))
    # Premium: resolved but open until the customer accepts.
    assert status(p2, T("2026-11-23T11:00+01:00")).state is State.RESOLVED
    # The customer does not accept and reopens Tuesday 09:00. Used so far: Fri 1 h +
    # Mon 1 h = 2 h; 22 h left from Tue 09:00: Tue 8 h, Wed 8 h, Thu 6 h -> Thu 15:00.
    p2 = apply(p2, "reopen", T("2026-11-24T09:00+01:00"))
    s = status(p2, T("2026-11-24T10:00+01:00"))
    assert s.state is State.ACKNOWLEDGED  # resolving counted as the response
    assert s.resolution.due == T("2026-11-26T15:00+01:00")
    p2 = apply(p2, "resolve", T("2026-11-26T14:00+01:00"))
    p2 = apply(p2, "accept", T("2026-11-26T16:00+01:00"), by="customer")
    s = status(p2, T("2026-11-27T10:00+01:00"))
    assert s.state is State.CLOSED
    assert s.resolution.status is ClockStatus.MET


def test_transitions_that_are_refused() -> None:
    inc = open_incident("i5", WARRANTY, "medium", T("2026-11-18T10:00+01:00"))
    inc = apply(inc, "acknowledge", T("2026-11-18T10:05+01:00"))
    with pytest.raises(TransitionError):
        apply(inc, "acknowledge", T("2026-11-18T10:06+01:00"))
    with pytest.raises(TransitionError):
        apply(inc, "resume", T("2026-11-18T10:06+01:00"))
    with pytest.raises(TransitionError):
        apply(inc, "pause", T("2026-11-18T10:00+01:00"))  # before the last event
    closed = apply(inc, "resolve", T("2026-11-18T11:00+01:00"))
    with pytest.raises(TransitionError):
        apply(closed, "accept", T("2026-11-18T12:00+01:00"))  # already closed
    assert (
        status(
            apply(closed, "reopen", T("2026-11-19T09:00+01:00")), T("2026-11-19T09:01+01:00")
        ).state
        is State.ACKNOWLEDGED
    )
    with pytest.raises(ValueError):
        apply(inc, "explode", T("2026-11-18T12:00+01:00"))
    with pytest.raises(KeyError):
        open_incident("i6", WARRANTY, "P1", T("2026-11-18T10:00+01:00"))


def test_imported_ticket_keeps_its_opening_time() -> None:
    # A ticket from another help desk, opened Monday 2 Nov 10:00, imported on 20 Nov.
    inc = open_incident("i7", MAINTENANCE_SUPPORT, "medium", T("2026-11-02T10:00+01:00"))
    s = status(inc, T("2026-11-20T10:00+01:00"))
    # 8 business hours from Mon 10:00 -> Tue 3 Nov 10:00; long breached.
    assert s.response.due == T("2026-11-03T10:00+01:00")
    assert s.response.status is ClockStatus.BREACHED


def test_priority_map_defaults_and_partner_overrides() -> None:
    assert priority_for("volume_full_48h", MAINTENANCE_SUPPORT) == "high"
    assert priority_for("camera_offline", MAINTENANCE_SUPPORT) == "medium"
    assert priority_for("volume_full_48h", PREMIUM_24X7) == "P1"
    assert priority_for("camera_offline", PREMIUM_24X7) == "P2"
    assert priority_for("expiring_30d", MAINTENANCE_SUPPORT) is None
    overrides = {"camera_offline": "high", "silent": None, "backup_overdue": "P4"}
    assert priority_for("camera_offline", MAINTENANCE_SUPPORT, overrides) == "high"
    assert priority_for("silent", PREMIUM_24X7, overrides) is None
    assert priority_for("backup_overdue", PREMIUM_24X7, overrides) == "P4"
    assert priority_for("backup_overdue", MAINTENANCE_SUPPORT, overrides) == "low"


def test_a_workaround_stops_the_p1_continuous_effort_clock() -> None:
    p1 = open_incident("w1", PREMIUM_24X7, "P1", T("2026-11-21T03:00+01:00"))
    p1 = apply(p1, "workaround", T("2026-11-21T03:40+01:00"), by="desk", note="failover")
    s = status(p1, T("2026-11-22T12:00+01:00"))
    assert s.state is State.WORKAROUND and s.workaround_at == T("2026-11-21T03:40+01:00")
    # Continuous effort until a workaround: kept, stopped at the workaround; the response
    # (1 h, 24x7) was answered by it after 40 minutes.
    assert (s.resolution.status, s.resolution.stopped_at) == (
        ClockStatus.MET,
        T("2026-11-21T03:40+01:00"),
    )
    assert s.response.status is ClockStatus.MET
    # A P2 workaround keeps its 3-working-day resolution clock running.
    p2 = open_incident("w2", PREMIUM_24X7, "P2", T("2026-11-23T10:00+01:00"))
    p2 = apply(p2, "workaround", T("2026-11-23T11:00+01:00"))
    assert status(p2, T("2026-11-24T10:00+01:00")).resolution.status is ClockStatus.RUNNING
    # Resolution after the workaround still closes through acceptance.
    p1 = apply(p1, "resolve", T("2026-11-23T09:00+01:00"))
    assert status(p1, T("2026-11-23T09:00+01:00")).state is State.RESOLVED


def test_follow_up_contacts_have_due_times() -> None:
    inc = open_incident("f1", MAINTENANCE_SUPPORT, "high", T("2026-11-18T10:00+01:00"))
    inc = apply(inc, "acknowledge", T("2026-11-18T11:00+01:00"))
    inc = apply(inc, "contact", T("2026-11-18T15:00+01:00"), by="customer", note="still down")
    # High follow-up: 8 business hours: 2 h on Wednesday (15-17) + 6 h Thursday -> 15:00.
    s = status(inc, T("2026-11-18T16:00+01:00"))
    ((at, clock),) = s.followups
    assert at == T("2026-11-18T15:00+01:00") and clock.due == T("2026-11-19T15:00+01:00")
    assert clock.status is ClockStatus.RUNNING and clock.target == "8 business hours"
    inc = apply(inc, "answer", T("2026-11-19T16:00+01:00"), by="desk")
    ((_, clock),) = status(inc, T("2026-11-20T10:00+01:00")).followups
    assert clock.status is ClockStatus.MISSED
    with pytest.raises(TransitionError, match="no follow-up"):
        apply(inc, "answer", T("2026-11-20T10:00+01:00"))
    shown = incident_to_json(inc, T("2026-11-20T10:00+01:00"))
    assert shown["followups"][0]["due"] == "2026-11-19T15:00:00+01:00"


def test_a_cleared_finding_resolves_awaiting_acceptance() -> None:
    inc = open_incident("c1", MAINTENANCE_SUPPORT, "medium", T("2026-11-18T10:00+01:00"))
    inc = apply(inc, "clear", T("2026-11-18T12:00+01:00"), by="collector", note="camera ok")
    s = status(inc, T("2026-11-18T12:00+01:00"))
    # Even on a plan whose own resolution closes: a cleared finding waits for acceptance.
    assert s.state is State.RESOLVED and s.response.status is ClockStatus.MET
    assert incident_to_json(inc, T("2026-11-18T12:00+01:00"))["awaiting_acceptance"] is True
    inc = apply(inc, "accept", T("2026-11-18T13:00+01:00"), by="customer")
    assert status(inc, T("2026-11-18T13:00+01:00")).state is State.CLOSED

"""The business clock on the cases that break naive code.

Unless a test says otherwise the calendar is the presets' default: Europe/Berlin, German
public holidays, Monday-Friday 09:00-17:00. Every expected value is worked out by hand in
the comment beside it. Dates used (checked against a 2025/2026 wall calendar):
2026-11-20 is a Friday; 2026-03-29 and 2026-10-25 are the EU DST switch Sundays;
2026-05-01 (Labour Day) is a Friday; 2026-01-06 (Epiphany, Bavaria only) is a Tuesday;
2025-12-25/26 are Thursday/Friday.
"""

from __future__ import annotations

import datetime as dt

import pytest

from collector.contracts.calendar import (
    CalendarError,
    CalendarSpec,
    business_calendar,
    parse_hours,
    weekly_hours,
)
from collector.contracts.plans import MAINTENANCE_SUPPORT, PREMIUM_24X7, SMA, WARRANTY
from collector.contracts.sla import due_times

T = dt.datetime.fromisoformat
BERLIN = CalendarSpec()
BAVARIA = CalendarSpec(subdiv="BY")


def iso(t: dt.datetime | None, spec: CalendarSpec = BERLIN) -> str | None:
    return None if t is None else business_calendar(spec).to_local(t).isoformat()


# --- an opening just before closing time on a Friday --------------------------------------


def test_friday_just_before_closing_business_hours() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-11-20T16:45+01:00"))
    # 4 business hours: 15 min on Friday (16:45-17:00), weekend closed, the remaining
    # 3 h 45 min from Monday 09:00 -> Monday 2026-11-23 12:45 CET.
    assert iso(d.response_due) == "2026-11-23T12:45:00+01:00"
    # Follow-up 8 business hours: 15 min Friday + 7 h 45 Monday from 09:00 -> 16:45.
    assert iso(d.followup_due) == "2026-11-23T16:45:00+01:00"


def test_friday_just_before_closing_next_working_day_and_working_days() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "low", T("2026-11-20T16:45+01:00"))
    # Next working day after Friday is Monday 23 Nov; due at its closing time 17:00.
    assert iso(d.response_due) == "2026-11-23T17:00:00+01:00"
    # Follow-up 3 working days at the same time of day: Mon(1), Tue(2), Wed(3) 16:45.
    assert iso(d.followup_due) == "2026-11-25T16:45:00+01:00"
    w = due_times(WARRANTY, "medium", T("2026-11-20T16:45+01:00"))
    # 2 working days: Mon(1), Tue(2) at 16:45 -> Tuesday 24 Nov 16:45.
    assert iso(w.response_due) == "2026-11-24T16:45:00+01:00"


def test_target_ending_exactly_at_closing_time_is_due_at_closing() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-11-20T13:00+01:00"))
    # 13:00 + 4 business hours = 17:00 the same Friday, not Monday 09:00.
    assert iso(d.response_due) == "2026-11-20T17:00:00+01:00"


# --- a Friday before a daylight-saving switch, both directions ----------------------------


def test_friday_before_spring_forward() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-03-27T15:00+01:00"))
    # 2 h on Friday (15-17 CET), clocks go forward on Sunday 29 March, the remaining 2 h
    # from Monday 09:00 CEST -> 11:00+02:00 (= 09:00 UTC; a fixed +01:00 would say 10:00 UTC).
    assert iso(d.response_due) == "2026-03-30T11:00:00+02:00"
    w = due_times(WARRANTY, "medium", T("2026-03-27T15:00+01:00"))
    # 2 working days: Mon(1), Tue(2) 31 March at the same local time 15:00, now CEST.
    # (Friday to Tuesday over the switch: 95 real hours later, not 4 x 24 = 96.)
    assert iso(w.response_due) == "2026-03-31T15:00:00+02:00"
    assert w.response_due - T("2026-03-27T15:00+01:00") == dt.timedelta(hours=95)


def test_friday_before_fall_back() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-10-23T15:00+02:00"))
    # 2 h Friday (15-17 CEST), clocks go back on Sunday 25 October, remaining 2 h from
    # Monday 09:00 CET -> 11:00+01:00 (= 10:00 UTC).
    assert iso(d.response_due) == "2026-10-26T11:00:00+01:00"
    w = due_times(WARRANTY, "medium", T("2026-10-23T15:00+02:00"))
    # 2 working days -> Tuesday 27 October 15:00, now CET (97 real hours later, not 96).
    assert iso(w.response_due) == "2026-10-27T15:00:00+01:00"
    assert w.response_due - T("2026-10-23T15:00+02:00") == dt.timedelta(hours=97)


# --- a public holiday on a weekday; a regional holiday that is not national ---------------


def test_public_holiday_on_a_weekday() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-04-30T16:00+02:00"))
    # 1 h on Thursday 30 April (16-17); Friday 1 May is Labour Day (national), then the
    # weekend; 3 h from Monday 4 May 09:00 -> 12:00+02:00.
    assert iso(d.response_due) == "2026-05-04T12:00:00+02:00"
    w = due_times(WARRANTY, "high", T("2026-04-30T16:00+02:00"))
    # Next working day after Thursday: Friday is a holiday -> Monday 4 May, closing 17:00.
    assert iso(w.response_due) == "2026-05-04T17:00:00+02:00"


def test_regional_holiday_that_is_not_national() -> None:
    opened = T("2026-01-05T14:00+01:00")  # Monday
    national = due_times(MAINTENANCE_SUPPORT, "high", opened, BERLIN)
    # Germany as a whole: 3 h Monday (14-17), 1 h Tuesday 6 Jan from 09:00 -> 10:00.
    assert iso(national.response_due) == "2026-01-06T10:00:00+01:00"
    bavaria = due_times(MAINTENANCE_SUPPORT, "high", opened, BAVARIA)
    # Bavaria: Epiphany closes Tuesday 6 Jan, so the last hour falls on Wednesday 7 Jan.
    assert iso(bavaria.response_due, BAVARIA) == "2026-01-07T10:00:00+01:00"


# --- an opening on a holiday or outside hours ----------------------------------------------


def test_opened_on_a_holiday_starts_at_next_opening() -> None:
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-05-01T10:00+02:00"))
    # Friday 1 May is closed; clock starts Monday 4 May 09:00; +4 h -> 13:00.
    assert iso(d.response_due) == "2026-05-04T13:00:00+02:00"


def test_opened_before_opening_and_after_closing() -> None:
    early = due_times(MAINTENANCE_SUPPORT, "high", T("2026-11-18T07:00+01:00"))
    # Wednesday 07:00: clock starts 09:00 the same day; +4 h -> 13:00.
    assert iso(early.response_due) == "2026-11-18T13:00:00+01:00"
    late = due_times(MAINTENANCE_SUPPORT, "high", T("2026-11-18T20:00+01:00"))
    # Wednesday 20:00: clock starts Thursday 09:00; +4 h -> Thursday 13:00.
    assert iso(late.response_due) == "2026-11-19T13:00:00+01:00"


def test_opened_on_saturday() -> None:
    d = due_times(WARRANTY, "medium", T("2026-11-21T11:00+01:00"))
    # Clock starts Monday 23 Nov 09:00 (0 h into the day); 2 working days -> Wed 25 09:00.
    assert iso(d.response_due) == "2026-11-25T09:00:00+01:00"
    h = due_times(WARRANTY, "high", T("2026-11-21T11:00+01:00"))
    # Next working day after Saturday: Monday 23 Nov, closing 17:00.
    assert iso(h.response_due) == "2026-11-23T17:00:00+01:00"


# --- next working day over Christmas; year end ---------------------------------------------


def test_next_working_day_over_christmas() -> None:
    d = due_times(WARRANTY, "high", T("2025-12-24T16:00+01:00"))
    # Wednesday 24 Dec 2025 (a working day in Germany): 25 Thu and 26 Fri are public
    # holidays, 27/28 the weekend -> Monday 29 Dec at closing time 17:00.
    assert iso(d.response_due) == "2025-12-29T17:00:00+01:00"


def test_working_days_over_new_year_in_bavaria() -> None:
    d = due_times(WARRANTY, "low", T("2025-12-31T10:00+01:00"), BAVARIA)
    # 3 working days from Wednesday 31 Dec 10:00: 1 Jan holiday, Fri 2 Jan (1),
    # weekend, Mon 5 Jan (2), Tue 6 Jan Epiphany in Bavaria, Wed 7 Jan (3) -> 10:00.
    assert iso(d.response_due, BAVARIA) == "2026-01-07T10:00:00+01:00"


# --- 24x7 across a DST switch --------------------------------------------------------------


def test_24x7_target_across_spring_forward() -> None:
    d = due_times(PREMIUM_24X7, "P1", T("2026-03-29T01:30+01:00"))
    # 01:30 CET = 00:30 UTC; +1 h = 01:30 UTC = 03:30 CEST (02:30 local does not exist).
    assert iso(d.response_due) == "2026-03-29T03:30:00+02:00"
    assert d.resolution_due is None  # P1: continuous effort, no due time


def test_24x7_target_across_fall_back() -> None:
    d = due_times(PREMIUM_24X7, "P1", T("2026-10-25T02:30+02:00"))
    # 02:30 CEST = 00:30 UTC; +1 h = 01:30 UTC = 02:30 CET, the second 02:30 of the night.
    assert iso(d.response_due) == "2026-10-25T02:30:00+01:00"
    assert d.response_due == T("2026-10-25T01:30+00:00")


def test_premium_business_day_targets_and_next_release() -> None:
    d = due_times(PREMIUM_24X7, "P2", T("2026-11-20T10:00+01:00"))
    # P2 response 1 business day: Monday 23 Nov 10:00; resolution 3: Wed 25 Nov 10:00.
    assert iso(d.response_due) == "2026-11-23T10:00:00+01:00"
    assert iso(d.resolution_due) == "2026-11-25T10:00:00+01:00"
    p4 = due_times(PREMIUM_24X7, "P4", T("2026-11-20T10:00+01:00"))
    assert p4.resolution_due is None  # next release


# --- opening hours with a lunch break, elapsed time ----------------------------------------


def test_split_opening_hours() -> None:
    spec = CalendarSpec(hours=weekly_hours("08:00-12:00,13:00-17:00"))
    d = due_times(MAINTENANCE_SUPPORT, "high", T("2026-11-18T11:00+01:00"), spec)
    # 1 h before lunch (11-12), lunch closed, 3 h from 13:00 -> 16:00.
    assert iso(d.response_due, spec) == "2026-11-18T16:00:00+01:00"


def test_elapsed_business_time_over_a_weekend() -> None:
    cal = business_calendar(BERLIN)
    # Friday 16:00 -> Monday 10:00: 1 h Friday + 1 h Monday = 7200 s.
    assert (
        cal.business_seconds_between(T("2026-11-20T16:00+01:00"), T("2026-11-23T10:00+01:00"))
        == 7200.0
    )


def test_sma_uses_working_day_targets() -> None:
    d = due_times(SMA, "medium", T("2026-11-18T10:00+01:00"))
    # Wednesday + 2 working days -> Friday 20 Nov 10:00.
    assert iso(d.response_due) == "2026-11-20T10:00:00+01:00"


def test_bad_calendars_are_refused() -> None:
    with pytest.raises(CalendarError):
        parse_hours("17:00-09:00")
    with pytest.raises(CalendarError):
        business_calendar(CalendarSpec(timezone="Mars/Olympus"))
    with pytest.raises(CalendarError):
        business_calendar(CalendarSpec(country="XX"))
    with pytest.raises(ValueError):
        due_times(WARRANTY, "high", dt.datetime(2026, 1, 1, 10, 0))

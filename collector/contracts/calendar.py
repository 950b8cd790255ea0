"""Business calendars and the clocks SLA targets count in.

A :class:`CalendarSpec` is plain, hashable data (time zone, weekly opening hours, public
holidays by country and subdivision, extra closed days); :func:`business_calendar` turns it
into a :class:`BusinessCalendar` that answers the questions a due time needs.

All instants given to and returned by this module are timezone-aware ``datetime`` values.
Wall-clock work (opening hours, "same time of day") happens in the calendar's zone via
``zoneinfo``; durations in absolute time (24x7) happen in UTC, so a daylight-saving switch
never stretches or shrinks a target.

Semantics (see docs/contracts.md for the reasons and examples):

* **business hours** -- N hours of open time. The clock starts at the opening moment or, if
  that is outside opening hours, at the next opening. A target that ends exactly at closing
  time is due at closing time (not at the next opening).
* **working days** -- the same business time into the N-th working day after the day the
  clock starts (for uniform opening hours: the same local time of day, N working days
  later). Opened Friday 16:30 with 2 working days: due Tuesday 16:30.
* **next working day** -- by closing time of the first working day after the local calendar
  day of the opening. Opened Saturday or Friday 16:59: due Monday at closing time.
* **24x7 hours** -- absolute hours in UTC.
* **next release / continuous effort** -- no due time (``None``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

UTC = dt.UTC

#: Seconds in an hour, for readability.
HOUR = 3600.0

#: How far a search for the next open moment may run before the calendar is declared empty.
MAX_SEARCH_DAYS = 3 * 366

Interval = tuple[dt.time, dt.time | None]
"""An opening interval in local wall time; ``None`` as the end means midnight (24:00)."""


class CalendarError(ValueError):
    """A calendar that cannot be built or has no open time at all."""


@functools.lru_cache(maxsize=1024)
def parse_hours(text: str) -> tuple[Interval, ...]:
    """Parse ``"HH:MM-HH:MM[,HH:MM-HH:MM...]"`` (``24:00`` allowed as an end); cached, as
    the same few strings come back for every stored contract."""
    intervals: list[Interval] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            start_s, end_s = part.split("-")
            start = _parse_clock(start_s, allow_24=False)
            end = _parse_clock(end_s, allow_24=True)
            if start is None:  # only an end may be 24:00
                raise ValueError(start_s)
        except ValueError as exc:
            raise CalendarError(f"bad opening hours {part!r}: expected HH:MM-HH:MM") from exc
        if end is not None and end <= start:
            raise CalendarError(f"bad opening hours {part!r}: end must be after start")
        intervals.append((start, end))
    intervals.sort(key=lambda iv: iv[0])
    for (_, end_a), (start_b, _) in itertools.pairwise(intervals):
        if end_a is None or end_a > start_b:
            raise CalendarError(f"overlapping opening hours in {text!r}")
    return tuple(intervals)


def _parse_clock(text: str, *, allow_24: bool) -> dt.time | None:
    text = text.strip()
    hh, mm = text.split(":")
    h, m = int(hh), int(mm)
    if allow_24 and h == 24 and m == 0:
        return None
    return dt.time(h, m)


def format_hours(intervals: Iterable[Interval]) -> str:
    """Inverse of :func:`parse_hours`."""
    return ",".join(
        f"{a.strftime('%H:%M')}-{'24:00' if b is None else b.strftime('%H:%M')}"
        for a, b in intervals
    )


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekly_hours(mon_fri: str, sat: str = "", sun: str = "") -> tuple[tuple[Interval, ...], ...]:
    """Opening hours for Monday..Sunday from three strings (weekdays, Saturday, Sunday)."""
    week = parse_hours(mon_fri)
    return (week,) * 5 + (parse_hours(sat), parse_hours(sun))


@dataclass(frozen=True)
class CalendarSpec:
    """A business calendar as data. Hashable: equal specs share one cached calendar."""

    timezone: str = "Europe/Berlin"
    country: str | None = "DE"
    subdiv: str | None = None
    hours: tuple[tuple[Interval, ...], ...] = field(
        default_factory=lambda: weekly_hours("09:00-17:00")
    )
    """Seven entries, Monday first; each a tuple of opening intervals (empty = closed)."""
    closed_days: frozenset[dt.date] = frozenset()
    """Extra closed days (company holidays, bridge days)."""

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise CalendarError("opening hours must list seven weekdays, Monday first")

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> CalendarSpec:
        """Open around the clock, every day (a 24x7 desk)."""
        return cls(
            timezone=timezone,
            country=None,
            hours=weekly_hours("00:00-24:00", "00:00-24:00", "00:00-24:00"),
        )

    def with_overrides(
        self,
        *,
        timezone: str | None = None,
        country: str | None = None,
        subdiv: str | None = None,
        hours: str | None = None,
    ) -> CalendarSpec:
        """A copy with the given fields replaced; ``hours`` applies Monday to Friday only
        (weekends closed), as the ``sla due --hours`` flag promises."""
        spec = self
        if country is not None:
            # A new country invalidates a subdivision of the old one unless one is given.
            spec = _replace(spec, country=country.upper(), subdiv=subdiv)
        elif subdiv is not None:
            spec = _replace(spec, subdiv=subdiv)
        if timezone is not None:
            spec = _replace(spec, timezone=timezone)
        if hours is not None:
            spec = _replace(spec, hours=weekly_hours(hours))
        return spec

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON/TOML storage."""
        return {
            "timezone": self.timezone,
            "country": self.country,
            "subdiv": self.subdiv,
            "hours": {WEEKDAYS[i]: format_hours(ivs) for i, ivs in enumerate(self.hours)},
            "closed_days": sorted(d.isoformat() for d in self.closed_days),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CalendarSpec:
        """Inverse of :meth:`to_dict`; missing keys take the defaults."""
        default = cls()
        hours_in = data.get("hours")
        if hours_in is None:
            hours = default.hours
        elif isinstance(hours_in, str):
            hours = weekly_hours(hours_in)
        elif isinstance(hours_in, Mapping):
            hours = tuple(parse_hours(str(hours_in.get(day, ""))) for day in WEEKDAYS)
        else:
            raise CalendarError("hours must be a string or a table of weekdays")
        closed = data.get("closed_days") or ()
        if not isinstance(closed, list | tuple):
            raise CalendarError("closed_days must be a list of dates")
        country = data.get("country", default.country)
        subdiv = data.get("subdiv", None)
        return cls(
            timezone=str(data.get("timezone", default.timezone)),
            country=str(country).upper() if country else None,
            subdiv=str(subdiv) if subdiv else None,
            hours=hours,
            closed_days=frozenset(
                d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in closed
            ),
        )


def _replace(spec: CalendarSpec, **changes: object) -> CalendarSpec:
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


class BusinessCalendar:
    """Answers the due-time questions for one :class:`CalendarSpec`.

    Build it with :func:`business_calendar` (cached). Per-day opening intervals and
    per-year holiday sets are cached, so evaluating many contracts that share a calendar
    is cheap.
    """

    def __init__(self, spec: CalendarSpec) -> None:
        try:
            self.zone = ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"unknown time zone {spec.timezone!r}") from exc
        if spec.country is not None:
            try:
                holidays.country_holidays(spec.country, subdiv=spec.subdiv, years=2000)
            except NotImplementedError as exc:
                raise CalendarError(
                    f"no public holidays known for country {spec.country!r}"
                    + (f" subdivision {spec.subdiv!r}" if spec.subdiv else "")
                ) from exc
        if not any(spec.hours):
            raise CalendarError("the calendar has no opening hours on any weekday")
        self.spec = spec
        self._holiday_years: dict[int, frozenset[dt.date]] = {}
        self._day_cache: dict[dt.date, tuple[tuple[dt.datetime, dt.datetime], ...]] = {}

    # --- days --------------------------------------------------------------------------

    def holidays_in(self, year: int) -> frozenset[dt.date]:
        """Public holidays of the calendar's country/subdivision in ``year`` (cached)."""
        found = self._holiday_years.get(year)
        if found is None:
            if self.spec.country is None:
                found = frozenset()
            else:
                found = frozenset(
                    holidays.country_holidays(
                        self.spec.country, subdiv=self.spec.subdiv, years=year
                    ).keys()
                )
            self._holiday_years[year] = found
        return found

    def is_working_day(self, day: dt.date) -> bool:
        """Open at some time on ``day``: opening hours that weekday, no holiday, not closed."""
        return bool(self.spec.hours[day.weekday()]) and not self.is_closed(day)

    def is_closed(self, day: dt.date) -> bool:
        """A public holiday or an extra closed day."""
        return day in self.spec.closed_days or day in self.holidays_in(day.year)

    def open_intervals(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The day's opening intervals as UTC instants (empty on a closed day).

        Local times that a DST switch skips map forward (zoneinfo's fold=0 rule); an
        interval ending at 24:00 ends at the next local midnight.
        """
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        result: list[tuple[dt.datetime, dt.datetime]] = []
        if self.is_working_day(day):
            for start, end in self.spec.hours[day.weekday()]:
                a = self._instant(day, start)
                b = (
                    self._instant(day + dt.timedelta(days=1), dt.time(0))
                    if end is None
                    else self._instant(day, end)
                )
                if b > a:
                    result.append((a, b))
        out = tuple(result)
        self._day_cache[day] = out
        return out

    def _instant(self, day: dt.date, t: dt.time) -> dt.datetime:
        local = dt.datetime.combine(day, t, tzinfo=self.zone)
        # Round-trip through UTC normalises a time that does not exist locally.
        return local.astimezone(UTC)

    def local_date(self, instant: dt.datetime) -> dt.date:
        """The calendar day of ``instant`` in the calendar's zone."""
        return _aware(instant).astimezone(self.zone).date()

    def to_local(self, instant: dt.datetime) -> dt.datetime:
        """``instant`` expressed in the calendar's zone (for display)."""
        return _aware(instant).astimezone(self.zone)

    def next_working_day_after(self, day: dt.date) -> dt.date:
        """The first working day strictly after ``day``."""
        d = day
        for _ in range(MAX_SEARCH_DAYS):
            d += dt.timedelta(days=1)
            if self.is_working_day(d):
                return d
        raise CalendarError("no working day within three years")

    def working_day_on_or_after(self, day: dt.date) -> dt.date:
        """``day`` if it is a working day, else the next one."""
        return day if self.is_working_day(day) else self.next_working_day_after(day)

    # --- instants ----------------------------------------------------------------------

    def clamp_open(self, instant: dt.datetime) -> dt.datetime:
        """``instant`` if the desk is open then, else the next opening (UTC)."""
        t = _aware(instant).astimezone(UTC)
        day = self.local_date(t) - dt.timedelta(days=1)  # an interval may run past midnight
        for _ in range(MAX_SEARCH_DAYS):
            for a, b in self.open_intervals(day):
                if t < b:
                    return max(a, t)
            day += dt.timedelta(days=1)
        raise CalendarError("no opening hours within three years")

    def add_business_seconds(self, instant: dt.datetime, seconds: float) -> dt.datetime:
        """The instant after ``seconds`` of open time counted from ``instant`` (UTC).

        ``seconds == 0`` gives the clamped start. A target that ends exactly at a closing
        time is due at that closing time.
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        t = _aware(instant).astimezone(UTC)
        remaining = dt.timedelta(seconds=seconds)
        day = self.local_date(t) - dt.timedelta(days=1)
        for _ in range(MAX_SEARCH_DAYS):
            for a, b in self.open_intervals(day):
                if b <= t:
                    continue
                s = max(a, t)
                avail = b - s
                if avail >= remaining:
                    return s + remaining
                remaining -= avail
                t = b
            day += dt.timedelta(days=1)
        raise CalendarError("business time does not fit within three years")

    def add_business_hours(self, instant: dt.datetime, hours: float) -> dt.datetime:
        """:meth:`add_business_seconds` in hours."""
        return self.add_business_seconds(instant, hours * HOUR)

    def business_seconds_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Open time between two instants (0 if ``end <= start``)."""
        a0 = _aware(start).astimezone(UTC)
        b0 = _aware(end).astimezone(UTC)
        if b0 <= a0:
            return 0.0
        total = 0.0
        day = self.local_date(a0) - dt.timedelta(days=1)
        last = self.local_date(b0)
        while day <= last:
            for a, b in self.open_intervals(day):
                lo = max(a, a0)
                hi = min(b, b0)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += dt.timedelta(days=1)
        return total

    def add_working_days(self, instant: dt.datetime, days: int) -> dt.datetime:
        """The same business time into the ``days``-th working day after the clock starts.

        The clock starts at :meth:`clamp_open` of ``instant``. With uniform opening hours
        this is the same local time of day; if the target day has shorter hours the due
        time is capped at its closing time.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        start = self.clamp_open(instant)
        start_day = self.local_date(start)
        intervals = self.open_intervals(start_day)
        if not intervals:  # clamped into an interval that began the day before
            start_day -= dt.timedelta(days=1)
            intervals = self.open_intervals(start_day)
        into_day = self.business_seconds_between(intervals[0][0], start)
        target = start_day
        for _ in range(days):
            target = self.next_working_day_after(target)
        target_intervals = self.open_intervals(target)
        opening = target_intervals[0][0]
        closing = target_intervals[-1][1]
        due = self.add_business_seconds(opening, into_day)
        return min(due, closing)

    def next_working_day_close(self, instant: dt.datetime) -> dt.datetime:
        """Closing time of the first working day after ``instant``'s local calendar day."""
        day = self.next_working_day_after(self.local_date(instant))
        return self.open_intervals(day)[-1][1]

    def add_absolute_hours(self, instant: dt.datetime, hours: float) -> dt.datetime:
        """24x7: ``hours`` of real time, computed in UTC (DST-safe)."""
        return _aware(instant).astimezone(UTC) + dt.timedelta(hours=hours)


def _aware(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant {instant.isoformat()} has no UTC offset")
    return instant


@functools.lru_cache(maxsize=256)
def business_calendar(spec: CalendarSpec) -> BusinessCalendar:
    """The (cached) calendar for ``spec``; raises :class:`CalendarError` if it is invalid."""
    return BusinessCalendar(spec)

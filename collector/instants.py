"""Times given as text: ISO 8601 with its UTC offset (``Z`` accepted), the collector's one
parser for them. Callers word the refusal for their audience (a command line, an API field);
the checks are here, so every way in accepts and refuses the same times.
"""

from __future__ import annotations

import datetime as dt

MIN_YEAR = 1970
MAX_YEAR = 9999
"""Times lie in these years (inclusive); anything else is a typo or an attack."""


class NoOffset(ValueError):
    """An ISO 8601 time without its UTC offset: which instant it names is unknown."""


class OutOfRange(ValueError):
    """A time outside the years :data:`MIN_YEAR`-:data:`MAX_YEAR`."""


def parse_instant(text: str) -> dt.datetime:
    """The time in ``text``; ``ValueError`` if it is not ISO 8601, :class:`NoOffset`
    if it has no UTC offset."""
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None or t.utcoffset() is None:
        raise NoOffset(f"{text!r} has no UTC offset")
    return t


def within_years(t: dt.datetime) -> dt.datetime:
    """``t`` unchanged if it and its UTC time lie in the years allowed, else :class:`OutOfRange`."""
    try:
        utc = t.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR or t.year < MIN_YEAR:
        raise OutOfRange(f"{t.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return t

"""Contracts and incidents to and from plain JSON-able dicts (storage and the API)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from collector.contracts.calendar import CalendarSpec
from collector.contracts.incidents import Action, Event, Incident
from collector.contracts.terms import Contract, Renewal


def _d(v: dt.date | None) -> str | None:
    return None if v is None else v.isoformat()


def _pd(v: Any) -> dt.date | None:
    return None if v in (None, "") else dt.date.fromisoformat(str(v))


def contract_to_dict(c: Contract) -> dict[str, Any]:
    return {
        "id": c.id,
        "customer": c.customer,
        "partner": c.partner,
        "plan": c.plan,
        "licence_ids": list(c.licence_ids),
        "start": _d(c.start),
        "installed_on": _d(c.installed_on),
        "term_months": c.term_months,
        "term_days": c.term_days,
        "auto_renew": c.auto_renew,
        "notice_days": c.notice_days,
        "grace_days": c.grace_days,
        "renewals": [{"months": r.months, "agreed_on": _d(r.agreed_on)} for r in c.renewals],
        "cancelled_on": _d(c.cancelled_on),
        "ends_on": _d(c.ends_on),
        "calendar": None if c.calendar is None else c.calendar.to_dict(),
        "list_prices": dict(c.list_prices),
        "sma_bought_with_software": c.sma_bought_with_software,
    }


_CALENDARS: dict[tuple[Any, ...], CalendarSpec] = {}


def _calendar(cal: Mapping[str, Any]) -> CalendarSpec:
    """Stored calendars repeat across contracts: parse each distinct one once."""
    hours = cal.get("hours")
    key = (
        cal.get("timezone"),
        cal.get("country"),
        cal.get("subdiv"),
        tuple(sorted(hours.items())) if isinstance(hours, Mapping) else hours,
        tuple(cal.get("closed_days") or ()),
    )
    spec = _CALENDARS.get(key)
    if spec is None:
        spec = CalendarSpec.from_dict(cal)
        if len(_CALENDARS) < 10_000:
            _CALENDARS[key] = spec
    return spec


def contract_from_dict(d: Mapping[str, Any]) -> Contract:
    cal = d.get("calendar")
    return Contract(
        id=str(d["id"]),
        customer=str(d["customer"]),
        partner=str(d["partner"]),
        plan=str(d["plan"]),
        licence_ids=tuple(str(x) for x in d.get("licence_ids", ())),
        start=_pd(d.get("start")),
        installed_on=_pd(d.get("installed_on")),
        term_months=d.get("term_months"),
        term_days=d.get("term_days"),
        auto_renew=d.get("auto_renew"),
        notice_days=d.get("notice_days"),
        grace_days=d.get("grace_days"),
        renewals=tuple(
            Renewal(int(r["months"]), _pd(r.get("agreed_on"))) for r in d.get("renewals", ())
        ),
        cancelled_on=_pd(d.get("cancelled_on")),
        ends_on=_pd(d.get("ends_on")),
        calendar=None if not cal else _calendar(cal),
        list_prices=tuple(
            sorted((str(k), float(v)) for k, v in (d.get("list_prices") or {}).items())
        ),
        sma_bought_with_software=bool(d.get("sma_bought_with_software", True)),
    )


def events_to_list(inc: Incident) -> list[dict[str, Any]]:
    return [
        {"action": e.action.value, "at": e.at.timestamp(), "by": e.by, "note": e.note}
        for e in inc.events
    ]


def events_from_list(items: list[Mapping[str, Any]]) -> tuple[Event, ...]:
    return tuple(
        Event(
            Action(str(e["action"])),
            dt.datetime.fromtimestamp(float(e["at"]), dt.UTC),
            str(e.get("by", "")),
            str(e.get("note", "")),
        )
        for e in items
    )

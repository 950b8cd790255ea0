"""The fleet page's search, filters, order and paging, on the fleet view's rows.

Pure functions of the rows and the query string, so the page, its live refresh and the
benchmark share them. The most urgent servers come first: critical, offline, warning,
then the rest; within a status, those with an overdue backup (or, when the "SLA at risk"
filter is on, every one of them has an SLA at risk) first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

PAGE_SIZE = 100
"""Servers per page; the tiles count every page."""
STATUSES_BY_URGENCY = ("critical", "offline", "warning", "pending", "unmonitored", "ok", "revoked")
_ORDER = {s: i for i, s in enumerate(STATUSES_BY_URGENCY)}


@dataclass(frozen=True)
class FleetQuery:
    q: str = ""
    status: str = ""
    customer: str = ""
    partner: str = ""
    plan: str = ""
    version: str = ""
    backup_overdue: bool = False
    sla_at_risk: bool = False
    page: int = 1

    def params(self, **changes: object) -> dict[str, str]:
        """The query string of this view (with ``changes``), empty fields left out."""
        fields = {
            "q": self.q,
            "status": self.status,
            "customer": self.customer,
            "partner": self.partner,
            "plan": self.plan,
            "version": self.version,
            "backup_overdue": "1" if self.backup_overdue else "",
            "sla_at_risk": "1" if self.sla_at_risk else "",
            "page": str(self.page) if self.page > 1 else "",
        }
        fields.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in fields.items() if v and v != "0"}


def parse(query: Mapping[str, str]) -> FleetQuery:
    def text(name: str) -> str:
        return query.get(name, "").strip()[:100]

    try:
        page = max(1, min(int(query.get("page", "1")), 1_000_000))
    except ValueError:
        page = 1
    return FleetQuery(
        q=text("q").lower(),
        status=text("status"),
        customer=text("customer"),
        partner=text("partner"),
        plan=text("plan"),
        version=text("version"),
        backup_overdue=query.get("backup_overdue", "") in ("1", "on", "true"),
        sla_at_risk=query.get("sla_at_risk", "") in ("1", "on", "true"),
        page=page,
    )


def version_of(v: Mapping[str, Any]) -> str:
    sw = v.get("software") or {}
    product, version = sw.get("product") or "", sw.get("version") or ""
    return f"{product} {version}" if product and version else product or version


def _overdue(v: Mapping[str, Any]) -> bool:
    b = v.get("backup")
    return bool(b and b.get("interval_s") and b.get("overdue"))


def matches(v: Mapping[str, Any], fq: FleetQuery, at_risk: set[str]) -> bool:
    contract = v.get("contract") or {}
    if fq.status and v["status"] != fq.status:
        return False
    if fq.customer and contract.get("customer") != fq.customer:
        return False
    if fq.partner and v.get("partner") != fq.partner:
        return False
    if fq.plan and contract.get("plan") != fq.plan:
        return False
    if fq.version and version_of(v) != fq.version:
        return False
    if fq.backup_overdue and not _overdue(v):
        return False
    if fq.sla_at_risk and v["id"] not in at_risk:
        return False
    if fq.q:
        hay = " ".join(
            str(x or "")
            for x in (v["hostname"], v["id"], v.get("licence_id"), contract.get("customer"))
        ).lower()
        return fq.q in hay
    return True


def urgency(v: Mapping[str, Any], at_risk: set[str]) -> tuple[int, int, str]:
    flagged = 0 if (_overdue(v) or v["id"] in at_risk) else 1
    return (_ORDER.get(v["status"], 9), flagged, v["hostname"])


def choices(views: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The values each select of the filter form offers (those present in the fleet)."""
    customers, plans, versions, owners = set(), set(), set(), set()
    for v in views:
        contract = v["contract"]
        owners.add(v.get("partner"))
        customers.add(contract.get("customer"))
        plans.add(contract.get("plan"))
        versions.add(version_of(v))
    return {
        "customers": sorted(x for x in customers if x),
        "plans": sorted(x for x in plans if x),
        "versions": sorted(x for x in versions if x),
        "partners": sorted(x for x in owners if x),
    }


def select(
    views: list[dict[str, Any]],
    fq: FleetQuery,
    at_risk: set[str],
    by_urgency: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], int, int, int]:
    """(the rows of the asked page, the page number, the number of pages, rows matching).
    ``by_urgency``: ``views`` already in :func:`urgency` order with none at risk, if the
    caller has it (the fleet's cache keeps it)."""
    if fq == FleetQuery(page=fq.page) and by_urgency is not None and not at_risk:
        matching = by_urgency
    else:
        if fq == FleetQuery(page=fq.page):
            matching = list(views)  # no filter: skip the per-row checks
        else:
            matching = [v for v in views if matches(v, fq, at_risk)]
        matching.sort(key=lambda v: urgency(v, at_risk))
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(fq.page, pages)
    return matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], page, pages, len(matching)


def filtered(fq: FleetQuery) -> bool:
    """Whether ``fq`` selects by anything but the status (and the page)."""
    return replace(fq, status="", page=1) != FleetQuery()


def tile_counts(
    views: Iterable[Mapping[str, Any]], fq: FleetQuery, at_risk: set[str]
) -> tuple[dict[str, int], int]:
    """(servers per status, all of them) among those the filter selects whatever their
    status: what the status tiles count, each tile then selecting its own status within
    the same filter."""
    any_status = replace(fq, status="", page=1)
    counts = Counter(v["status"] for v in views if matches(v, any_status, at_risk))
    return dict(counts), sum(counts.values())

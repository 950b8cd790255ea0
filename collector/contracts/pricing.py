"""SMA price basis: the yearly price from the list prices of the modules in use.

The seed says: first year about 19% of the list price of all software modules used when
bought with the software, lower from year to year, dearer when bought later; an edition
upgrade is credited in full only with an active agreement. The numbers live in
:class:`~collector.contracts.plans.SmaPricing` (defaults 19% / 17% / 15%, +25% when bought
later, full credit with an active SMA, none without) and are configurable per plan.
Money is computed in ``Decimal`` and rounded half-up to cents at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from collector.contracts.plans import SmaPricing

CENT = Decimal("0.01")


def _money(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def year_percent(pricing: SmaPricing, year: int, bought_with_software: bool) -> Decimal:
    """The agreement's rate in ``year`` (1 = first year) as a percentage."""
    if year < 1:
        raise ValueError("year counts from 1")
    if year == 1:
        rate = Decimal(str(pricing.first_year_percent))
    else:
        later = pricing.later_year_percents
        rate = (
            Decimal(str(later[min(year - 2, len(later) - 1)]))
            if later
            else Decimal(str(pricing.first_year_percent))
        )
    if not bought_with_software:
        rate = rate * (1 + Decimal(str(pricing.bought_later_surcharge_percent)) / 100)
    return rate


@dataclass(frozen=True)
class Quote:
    year: int
    list_total: Decimal
    percent: Decimal
    price: Decimal
    modules: tuple[tuple[str, Decimal], ...]
    unknown_modules: tuple[str, ...]
    """Modules in use without a list price (not in the total; the partner must add them)."""

    def to_json(self) -> dict[str, object]:
        return {
            "year": self.year,
            "list_total": str(self.list_total),
            "percent": str(self.percent.normalize()),
            "price": str(self.price),
            "modules": {m: str(p) for m, p in self.modules},
            "unknown_modules": list(self.unknown_modules),
        }


def sma_quote(
    modules_in_use: Iterable[str],
    price_list: Mapping[str, Decimal | float | str],
    pricing: SmaPricing,
    *,
    year: int = 1,
    bought_with_software: bool = True,
) -> Quote:
    """The agreement's price for ``year`` from the list prices of the modules in use
    (each module counted once)."""
    used = sorted(set(modules_in_use))
    priced = tuple((m, Decimal(str(price_list[m]))) for m in used if m in price_list)
    unknown = tuple(m for m in used if m not in price_list)
    total = sum((p for _, p in priced), Decimal(0))
    rate = year_percent(pricing, year, bought_with_software)
    return Quote(year, _money(total), rate, _money(total * rate / 100), priced, unknown)


def edition_upgrade_cost(
    old_edition_price: Decimal | float | str,
    new_edition_price: Decimal | float | str,
    sma_active: bool,
    pricing: SmaPricing,
) -> Decimal:
    """What an edition upgrade costs: the new edition's list price minus the credited share
    of the old one (full with an active agreement by default), never below zero."""
    old = Decimal(str(old_edition_price))
    new = Decimal(str(new_edition_price))
    share = Decimal(
        str(pricing.edition_credit_active if sma_active else pricing.edition_credit_inactive)
    )
    return _money(max(Decimal(0), new - old * share))


def edition_upgrade(
    old_edition: str,
    new_edition: str,
    price_list: Mapping[str, Decimal | float | str],
    sma_active: bool,
    pricing: SmaPricing,
) -> dict[str, object]:
    """The upgrade from one edition to another, priced from the list (``KeyError`` naming
    an edition without a list price), as JSON-ready values."""
    for name in (old_edition, new_edition):
        if name not in price_list:
            raise KeyError(f"no list price for edition {name!r} (vigil-collector prices import)")
    old = Decimal(str(price_list[old_edition]))
    new = Decimal(str(price_list[new_edition]))
    share = pricing.edition_credit_active if sma_active else pricing.edition_credit_inactive
    return {
        "from": old_edition,
        "to": new_edition,
        "old_list_price": str(_money(old)),
        "new_list_price": str(_money(new)),
        "sma_active": sma_active,
        "credit_share": share,
        "price": str(edition_upgrade_cost(old, new, sma_active, pricing)),
    }

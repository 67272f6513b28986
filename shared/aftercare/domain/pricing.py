"""Transparent cost: what a repair is expected to cost the customer, from the versioned price table.

expected cost = parts lines (held, backordered or consumed) at their reserved unit price x qty
              + labour for the expected path (remote fee, or on-site call-out + hours x hourly);
0 when the device is in warranty. See `shared/aftercare/data/pricing.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from aftercare.data import DATA_FOLDER, load
from aftercare.models.tickets import TicketFlag

PRICED_LINE_STATES = frozenset({"held", "backordered", "consumed"})
CENT = Decimal("0.01")
Money = Annotated[Decimal, Field(ge=0, decimal_places=2)]


class _Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class OnSiteRate(_Price):
    call_out: Money
    hourly: Money


class OnSiteRates(_Price):
    default: OnSiteRate
    regions: dict[str, OnSiteRate] = Field(default_factory=dict)
    hours: dict[str, Annotated[Decimal, Field(ge=0)]]

    def labour(self, region: str, category: str) -> Decimal:
        rate = self.regions.get(region, self.default)
        hours = self.hours.get(category, self.hours["default"])
        return rate.call_out + hours * rate.hourly


class RemoteRates(_Price):
    fee: Money


class PriceTable(_Price):
    version: str
    currency: str
    remote: RemoteRates
    on_site: OnSiteRates


class PricedLine(_Price):
    sku: str
    name_en: str
    name_zh: str
    qty: int
    unit_price: Decimal
    status: str

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.qty


class CostEstimate(_Price):
    """What the customer is expected to pay, with the parts and labour it is made of."""

    in_warranty: bool
    on_site: bool
    currency: str
    parts: Decimal
    labour: Decimal
    total: Decimal
    customer_pays: Decimal
    pricing_version: str


class RepairFacts(_Price):
    """The ticket facts pricing needs (a subset of the ticket record)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    region: str
    category: str
    in_warranty: bool
    remote_fixable: bool = False
    flags: list[str] = Field(default_factory=list)
    resolution: str | None = None
    parts: list[dict[str, Any]] = Field(default_factory=list)


def priced_lines(parts: Iterable[Mapping[str, Any]]) -> list[PricedLine]:
    """Parts lines that count toward the cost (released or expired holds do not)."""
    return [
        PricedLine.model_validate(
            {
                "sku": p["sku"],
                "name_en": p.get("name_en", p["sku"]),
                "name_zh": p.get("name_zh", p.get("name_en", p["sku"])),
                "qty": p["qty"],
                "unit_price": Decimal(str(p["unit_price"])),
                "status": p["status"],
            }
        )
        for p in parts
        if p.get("status") in PRICED_LINE_STATES
    ]


def expects_on_site(facts: RepairFacts) -> bool:
    if facts.resolution is not None:
        return facts.resolution == "on_site"
    return (
        not facts.remote_fixable
        or bool(priced_lines(facts.parts))
        or TicketFlag.NEEDS_ONSITE_DISPATCH in facts.flags
    )


def estimate(facts: RepairFacts, table: PriceTable) -> CostEstimate:
    """Parts + labour for the expected path; the customer pays 0 in warranty."""
    on_site = expects_on_site(facts)
    parts = sum((line.amount for line in priced_lines(facts.parts)), Decimal(0))
    labour = table.on_site.labour(facts.region, facts.category) if on_site else table.remote.fee
    total = (parts + labour).quantize(CENT, rounding=ROUND_HALF_UP)
    return CostEstimate(
        in_warranty=facts.in_warranty,
        on_site=on_site,
        currency=table.currency,
        parts=parts.quantize(CENT, rounding=ROUND_HALF_UP),
        labour=labour.quantize(CENT, rounding=ROUND_HALF_UP),
        total=total,
        customer_pays=Decimal("0.00") if facts.in_warranty else total,
        pricing_version=table.version,
    )


def ticket_estimate(ticket: Mapping[str, Any]) -> CostEstimate:
    """A ticket's estimate (its record as a mapping) from the shipped price table: what the
    support API's ticket view and the CLI's direct `tickets show` both print."""
    return estimate(RepairFacts.model_validate(ticket), load_price_table())


def parse_price_table(data: Mapping[str, Any]) -> PriceTable:
    return PriceTable.model_validate({**data, "version": str(data["version"])})


@cache
def load_price_table() -> PriceTable:
    """The price table shipped with this build (shared layer data)."""
    return parse_price_table(load(DATA_FOLDER, "pricing.yaml"))

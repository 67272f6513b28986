"""A ticket's parts lines and suggested parts as the contract has them: stored on the ticket,
shown by the API.

How lines are planned, held and closed out is the domain's (`aftercare.domain.parts`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict


class LineStatus(StrEnum):
    HELD = "held"
    CONSUMED = "consumed"
    RELEASED = "released"
    EXPIRED = "expired"
    BACKORDERED = "backordered"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class PartsLine(_Frozen):
    """One line of a ticket's parts: what is held (or backordered) for it, at what price."""

    reservation_id: str
    sku: str
    name_en: str
    name_zh: str
    qty: int
    warehouse: str | None
    unit_price: float
    currency: str
    status: LineStatus
    reserved_at: AwareDatetime
    hold_expires_at: AwareDatetime | None = None
    # the stock shard of (sku, warehouse) the line holds on (or counts its backorder on)
    shard: int = 0

    def name(self, language: str) -> str:
        """The part's name in `language` (Chinese or English), else English, else the SKU."""
        return (self.name_zh if language.startswith("zh") else "") or self.name_en or self.sku


class WantedPart(_Frozen):
    sku: str
    qty: int

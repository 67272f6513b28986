"""Spare parts: reserving the likely parts when a ticket opens, and every later change to a hold.

Invariant, for every (SKU, warehouse): on_hand = available + held, and available >= 0. Stock
items store `on_hand`, `held` and `available`; every change is a `StockDelta` applied with the
condition ``available >= need`` in the same transaction as the reservation and the ticket's parts
line, so stock can never go negative however many tickets race for the last unit.

A reservation id is derived from (ticket, SKU): a ticket holds at most one line per SKU, for at
most the quantity its catalog entry asks for, and a redelivered trigger cannot reserve twice.

Reorder suggestion (per SKU and warehouse), documented in README "Spare parts":
    d    = (consumed in the last `window_days` + open demand (held + backordered)) / window_days
    SS   = z * sqrt(d) * sqrt(L)       z for the service level (Poisson demand: sigma_d = sqrt(d))
    ROP  = d * L + SS                  L = supplier lead time in days
    S    = ROP + d * review_days       order-up-to level
    qty  = ceil(S + backordered - available), at least 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aftercare.models.parts import LineStatus, PartsLine, WantedPart

OPEN_LINE_STATES = frozenset({LineStatus.HELD, LineStatus.BACKORDERED})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class PartInfo(_Frozen):
    sku: str
    name_en: str
    name_zh: str
    unit_price: float
    currency: str
    lead_time_days: int
    models: list[str] = Field(default_factory=list)


class StockLevel(_Frozen):
    sku: str
    warehouse: str
    on_hand: int
    held: int
    reorder_point: int
    version: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.held


class StockDelta(_Frozen):
    """A change to one stock item, applied only if ``available >= need`` at that moment."""

    sku: str
    warehouse: str
    on_hand: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.held

    @property
    def need(self) -> int:
        """The availability the change requires (0 when it does not reduce availability)."""
        return max(-self.available, 0)


class LineChange(_Frozen):
    """A parts line moving to a new status, with the stock change that goes with it."""

    index: int
    line: PartsLine
    to: LineStatus
    delta: StockDelta | None


class ReservationPlan(_Frozen):
    lines: list[PartsLine]
    deltas: list[StockDelta]
    notes: list[str] = Field(default_factory=list)

    @property
    def held(self) -> list[PartsLine]:
        return [line for line in self.lines if line.status is LineStatus.HELD]

    @property
    def backordered(self) -> list[PartsLine]:
        return [line for line in self.lines if line.status is LineStatus.BACKORDERED]


class OutOfStock(Exception):
    """Stock changed under a reservation: re-read and plan again."""


def reservation_id(ticket_id: str, sku: str) -> str:
    return f"R-{ticket_id.removeprefix('T-')}-{sku}"


def plan_reservations(
    *,
    ticket_id: str,
    model: str,
    wanted: Sequence[WantedPart],
    parts: Mapping[str, PartInfo],
    routing: Sequence[str],
    stock: Mapping[tuple[str, str], StockLevel],
    now: datetime,
    hold: timedelta,
) -> ReservationPlan:
    """Hold each wanted part at the first warehouse of the region's list that has it."""
    lines: list[PartsLine] = []
    deltas: list[StockDelta] = []
    notes: list[str] = []
    for want in wanted:
        info = parts.get(want.sku)
        if info is None:
            notes.append(f"{want.sku}: not in the parts catalog; not reserved")
            continue
        if model not in info.models:
            notes.append(f"{want.sku}: not compatible with {model}; not reserved")
            continue
        source = next(
            (wh for wh in routing if (s := stock.get((want.sku, wh))) and s.available >= want.qty),
            None,
        )
        status = LineStatus.HELD if source else LineStatus.BACKORDERED
        lines.append(
            PartsLine(
                reservation_id=reservation_id(ticket_id, want.sku),
                sku=want.sku,
                name_en=info.name_en,
                name_zh=info.name_zh,
                qty=want.qty,
                warehouse=source or (routing[0] if routing else None),
                unit_price=info.unit_price,
                currency=info.currency,
                status=status,
                reserved_at=now,
                hold_expires_at=now + hold if source else None,
            )
        )
        if source:
            deltas.append(StockDelta(sku=want.sku, warehouse=source, held=want.qty))
    return ReservationPlan(lines=lines, deltas=deltas, notes=notes)


def _delta_for(line: PartsLine, to: LineStatus) -> StockDelta | None:
    if line.status is not LineStatus.HELD or line.warehouse is None:
        return None
    if to is LineStatus.CONSUMED:
        return StockDelta(sku=line.sku, warehouse=line.warehouse, on_hand=-line.qty, held=-line.qty)
    return StockDelta(sku=line.sku, warehouse=line.warehouse, held=-line.qty)


ALLOWED_LINE_MOVES: dict[LineStatus, frozenset[LineStatus]] = {
    LineStatus.HELD: frozenset({LineStatus.CONSUMED, LineStatus.RELEASED, LineStatus.EXPIRED}),
    LineStatus.BACKORDERED: frozenset({LineStatus.RELEASED}),
    LineStatus.CONSUMED: frozenset(),
    LineStatus.RELEASED: frozenset(),
    LineStatus.EXPIRED: frozenset(),
}


class InvalidLineChange(ValueError):
    def __init__(self, line: PartsLine, to: LineStatus) -> None:
        super().__init__(f"parts line {line.sku} is {line.status}; it cannot become {to}")


def change_line(index: int, line: PartsLine, to: LineStatus) -> LineChange:
    if to not in ALLOWED_LINE_MOVES[line.status]:
        raise InvalidLineChange(line, to)
    return LineChange(index=index, line=line, to=to, delta=_delta_for(line, to))


def close_out_lines(lines: Sequence[PartsLine], *, consume: bool) -> list[LineChange]:
    """When a ticket leaves the active states: consume holds (on-site repair) or release them;
    backorders are released either way."""
    changes = []
    for index, line in enumerate(lines):
        if line.status is LineStatus.HELD:
            to = LineStatus.CONSUMED if consume else LineStatus.RELEASED
            changes.append(change_line(index, line, to))
        elif line.status is LineStatus.BACKORDERED:
            changes.append(change_line(index, line, LineStatus.RELEASED))
    return changes


def line_from_item(data: Mapping[str, Any]) -> PartsLine:
    return PartsLine.model_validate(data)


# --------------------------------------------------------------------------- replenishment


class ReorderPolicy(_Frozen):
    service_level: float = 0.95
    window_days: int = 30
    review_days: int = 7

    @property
    def z(self) -> float:
        # statistics (with fractions) is imported here: only reorder suggestions need it, and
        # every function's start imports this module
        from statistics import NormalDist

        return NormalDist().inv_cdf(self.service_level)


class ReorderSuggestion(_Frozen):
    sku: str
    warehouse: str
    suggested_qty: int
    reason: str
    daily_demand: float
    safety_stock: float
    reorder_point: float


def suggest_reorder(
    stock: StockLevel,
    *,
    consumed_in_window: int,
    backordered: int,
    lead_time_days: int,
    policy: ReorderPolicy,
) -> ReorderSuggestion:
    """Fault-driven reorder quantity for one stock item (formula in the module docstring)."""
    open_demand = stock.held + backordered
    daily = (consumed_in_window + open_demand) / policy.window_days
    safety = policy.z * math.sqrt(daily) * math.sqrt(lead_time_days)
    rop = daily * lead_time_days + safety
    order_up_to = rop + daily * policy.review_days
    qty = max(math.ceil(order_up_to + backordered - stock.available), 0)
    reason = (
        f"available {stock.available} (reorder point {stock.reorder_point}); demand "
        f"{daily:.2f}/day = ({consumed_in_window} consumed in {policy.window_days}d + "
        f"{open_demand} open) / {policy.window_days}; lead time {lead_time_days}d; "
        f"safety stock {safety:.1f} at {policy.service_level:.0%}; order up to "
        f"{order_up_to:.1f} + {backordered} backordered"
    )
    return ReorderSuggestion(
        sku=stock.sku,
        warehouse=stock.warehouse,
        suggested_qty=qty,
        reason=reason,
        daily_demand=round(daily, 3),
        safety_stock=round(safety, 2),
        reorder_point=round(rop, 2),
    )


def crossed_reorder_point(old_available: int, new_available: int, reorder_point: int) -> bool:
    """True exactly when availability falls from above the reorder point to at/below it."""
    return old_available > reorder_point >= new_available

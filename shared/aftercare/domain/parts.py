"""Spare parts: reserving the likely parts when a ticket opens, and every later change to a hold.

Invariant, for every (SKU, warehouse): on_hand = available + held, and available >= 0. The
quantity of a (SKU, warehouse) is split over `stock_shards` shard items (a number per SKU in its
master data; 1 = one item), each with its own `on_hand`, `held` and `available` and the same
invariant, so the totals keep it too. Every change is a `StockDelta` on one shard applied with
the condition ``available >= need`` in the same transaction as the reservation and the ticket's
parts line, so stock can never go negative however many tickets race for the last unit.

A reservation holds on one shard: the one the hash of (ticket, SKU) names, or the next one round
the ring with enough available, or - when no single shard has enough but the warehouse does -
the fullest shard topped up from the others in the same transaction (`transfer`). Concurrent
reservations of one SKU at one warehouse so spread over `stock_shards` items (and partition
keys) instead of all meeting on one: see README "Scale" for the arithmetic.

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
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aftercare.models.parts import LineStatus, PartsLine, WantedPart

OPEN_LINE_STATES = frozenset({LineStatus.HELD, LineStatus.BACKORDERED})
MAX_SHARDS = 32  # a reservation's read fetches every shard of each candidate warehouse


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
    stock_shards: int = Field(default=1, ge=1, le=MAX_SHARDS)


class StockShard(_Frozen):
    """One shard item of a (SKU, warehouse)."""

    shard: int
    on_hand: int
    held: int

    @property
    def available(self) -> int:
        return self.on_hand - self.held


class StockLevel(_Frozen):
    """A (SKU, warehouse)'s totals; `shards` are its shard items when it was read as shards
    (empty: one unsharded item, shard 0)."""

    sku: str
    warehouse: str
    on_hand: int
    held: int
    reorder_point: int
    version: int = 0
    shards: tuple[StockShard, ...] = ()
    backordered: int = 0  # open backorder demand counted on its shards

    @property
    def available(self) -> int:
        return self.on_hand - self.held

    def shard_levels(self) -> tuple[StockShard, ...]:
        return self.shards or (StockShard(shard=0, on_hand=self.on_hand, held=self.held),)


def level_of(
    sku: str,
    warehouse: str,
    shards: Sequence[StockShard],
    *,
    reorder_point: int,
    version: int,
    backordered: int = 0,
) -> StockLevel:
    """Totals of a (SKU, warehouse) from its shard items (the read path sums the shards)."""
    ordered = tuple(sorted(shards, key=lambda s: s.shard))
    return StockLevel(
        sku=sku,
        warehouse=warehouse,
        on_hand=sum(s.on_hand for s in ordered),
        held=sum(s.held for s in ordered),
        reorder_point=reorder_point,
        version=version,
        shards=ordered,
        backordered=backordered,
    )


class StockDelta(_Frozen):
    """A change to one stock shard item, applied only if ``available >= need`` at that moment.

    `transfer` is the part of `on_hand` that moves between shards of the same (SKU, warehouse)
    (a top-up or a rebalance), not goods arriving or leaving: the stock watcher subtracts it."""

    sku: str
    warehouse: str
    on_hand: int = 0
    held: int = 0
    shard: int = Field(default=0, ge=0)
    transfer: int = 0

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


def home_shard(ticket_id: str, sku: str, shards: int) -> int:
    """The shard a ticket's line of `sku` tries first: a stable hash, the same in every process
    (Python's hash() is salted per process)."""
    return zlib.crc32(f"{ticket_id}|{sku}".encode()) % max(shards, 1)


def shard_deltas(
    level: StockLevel, qty: int, ticket_id: str
) -> tuple[int, list[StockDelta]] | None:
    """Hold `qty` on one shard: the home shard, else the next round the ring with enough
    available, else the fullest shard topped up from the others (one transaction). None when
    the warehouse as a whole has fewer than `qty` available."""
    if level.available < qty:
        return None
    shards = level.shard_levels()
    count = len(shards)
    home = home_shard(ticket_id, level.sku, count)
    ring = [shards[(home + i) % count] for i in range(count)]
    for shard in ring:
        if shard.available >= qty:
            held = StockDelta(sku=level.sku, warehouse=level.warehouse, held=qty, shard=shard.shard)
            return shard.shard, [held]
    target = max(ring, key=lambda s: s.available)
    missing = qty - target.available
    donors: list[StockDelta] = []
    for donor in sorted(ring, key=lambda s: -s.available):
        if missing <= 0:
            break
        if donor.shard == target.shard or donor.available <= 0:
            continue
        take = min(donor.available, missing)
        missing -= take
        donors.append(_move(level, donor.shard, -take))
    moved = qty - target.available
    held = StockDelta(
        sku=level.sku,
        warehouse=level.warehouse,
        on_hand=moved,
        held=qty,
        shard=target.shard,
        transfer=moved,
    )
    return target.shard, [held, *donors]


def _move(level: StockLevel, shard: int, units: int) -> StockDelta:
    return StockDelta(
        sku=level.sku, warehouse=level.warehouse, on_hand=units, shard=shard, transfer=units
    )


def spread_change(level: StockLevel, change: int) -> list[StockDelta]:
    """A counted adjustment over the shards: goods received go to the emptiest shards first
    (levelling them), a write-off comes from the fullest; each shard's delta keeps its own
    available >= 0. Raises OutOfStock when the write-off is more than is available."""
    shards = {s.shard: s.available for s in level.shard_levels()}
    if change < 0 and -change > sum(max(a, 0) for a in shards.values()):
        raise OutOfStock(
            f"{level.sku} at {level.warehouse}: {level.available} available, cannot remove "
            f"{-change}"
        )
    moved: dict[int, int] = dict.fromkeys(shards, 0)
    step = 1 if change > 0 else -1
    for _ in range(abs(change)):
        pick = (min if step > 0 else max)(shards, key=lambda n: (shards[n], n))
        shards[pick] += step
        moved[pick] += step
    return [
        StockDelta(sku=level.sku, warehouse=level.warehouse, on_hand=units, shard=n)
        for n, units in sorted(moved.items())
        if units
    ]


def rebalance_deltas(level: StockLevel) -> list[StockDelta]:
    """Moves that level the shards' availability (differences of at most one unit); empty
    when they already are. Holds stay where they are: only available units move."""
    shards = level.shard_levels()
    total = sum(s.available for s in shards)
    base, extra = divmod(total, len(shards))
    ordered = sorted(shards, key=lambda s: -s.available)  # the fullest get the extra units
    wanted = {s.shard: base + (1 if i < extra else 0) for i, s in enumerate(ordered)}
    return [
        _move(level, s.shard, wanted[s.shard] - s.available)
        for s in shards
        if wanted[s.shard] != s.available
    ]


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
        source: str | None = None
        shard, held = 0, list[StockDelta]()
        for wh in routing:
            level = stock.get((want.sku, wh))
            picked = shard_deltas(level, want.qty, ticket_id) if level else None
            if picked is not None:
                source, (shard, held) = wh, picked
                break
        if source is None and routing:  # the backorder counter is sharded the same way
            shard = home_shard(ticket_id, want.sku, info.stock_shards)
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
                shard=shard,
            )
        )
        deltas += held
    return ReservationPlan(lines=lines, deltas=deltas, notes=notes)


def _delta_for(line: PartsLine, to: LineStatus) -> StockDelta | None:
    if line.status is not LineStatus.HELD or line.warehouse is None:
        return None
    consumed = -line.qty if to is LineStatus.CONSUMED else 0
    return StockDelta(
        sku=line.sku, warehouse=line.warehouse, on_hand=consumed, held=-line.qty, shard=line.shard
    )


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

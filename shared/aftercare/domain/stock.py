"""Parts use cases after a ticket opened: hold expiry, manual holds/releases, stock adjustments,
and low-stock detection with a reorder suggestion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from aftercare.domain.parts import (
    OutOfStock,
    ReorderPolicy,
    ReorderSuggestion,
    StockDelta,
    StockLevel,
    change_line,
    crossed_reorder_point,
    plan_reservations,
    suggest_reorder,
)
from aftercare.domain.ports import (
    ConcurrentUpdate,
    ExpiredHolds,
    InventoryWriter,
    LowStockSink,
    PartsChange,
    PartsHolds,
    StockHistory,
)
from aftercare.domain.tickets import Ticket
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import TimelineEntry

RETRIES = 3


class PartsError(ValueError):
    """A parts request that cannot be carried out as asked (reported to the engineer)."""


def _find(ticket: Ticket, *, sku: str | None = None, reservation_id: str | None = None) -> int:
    for index, line in enumerate(ticket.parts):
        if line.sku == sku or line.reservation_id == reservation_id:
            return index
    return -1


def expire_hold(store: PartsHolds, ticket_id: str, reservation_id: str, now: datetime) -> bool:
    """Return an expired hold to stock, exactly once. False when there was nothing to do."""
    for _ in range(RETRIES):
        ticket = store.get_ticket(ticket_id).ticket
        index = _find(ticket, reservation_id=reservation_id)
        line = ticket.parts[index] if index >= 0 else None
        expires = line.hold_expires_at if line else None
        if line is None or line.status is not LineStatus.HELD or expires is None or expires > now:
            return False
        entry = TimelineEntry(
            at=now,
            kind="part_hold_expired",
            actor="hold-sweeper",
            detail={"sku": line.sku, "qty": line.qty, "warehouse": line.warehouse},
        )
        change = change_line(index, line, LineStatus.EXPIRED)
        try:
            store.apply_parts_change(PartsChange(ticket=ticket, changes=[change], entry=entry))
        except ConcurrentUpdate:
            continue
        return True
    return False


def release_part(
    store: PartsHolds, ticket_id: str, sku: str, *, actor: str, reason: str, now: datetime
) -> Ticket:
    """An engineer gives a held (or backordered) part back."""
    ticket = store.get_ticket(ticket_id).ticket
    index = _find(ticket, sku=sku)
    if index < 0:
        raise PartsError(f"ticket {ticket_id} has no parts line for {sku}")
    change = change_line(index, ticket.parts[index], LineStatus.RELEASED)
    entry = TimelineEntry(
        at=now,
        kind="part_released",
        actor=actor,
        detail={"sku": sku, "qty": change.line.qty, "from": change.line.status, "reason": reason},
    )
    store.apply_parts_change(PartsChange(ticket=ticket, changes=[change], entry=entry))
    return store.get_ticket(ticket_id).ticket


def reserve_part(
    store: PartsHolds,
    ticket_id: str,
    sku: str,
    *,
    actor: str,
    reason: str,
    now: datetime,
    hold: timedelta,
) -> Ticket:
    """An engineer holds a part the ticket's fault calls for (never more than the catalog asks)."""
    ticket = store.get_ticket(ticket_id).ticket
    if not ticket.active:
        raise PartsError(
            f"ticket {ticket_id} is {ticket.status}; parts are held for active tickets"
        )
    wanted = [p for p in ticket.suggested_parts if p.sku == sku]
    if not wanted:
        raise PartsError(f"{sku} is not a part this ticket's fault calls for")
    index = _find(ticket, sku=sku)
    current = ticket.parts[index] if index >= 0 else None
    if current is not None and current.status is LineStatus.HELD:
        raise PartsError(f"{sku} is already held for {ticket_id}")
    opening = store.load_open_context(ticket.customer_id, ticket.region, [sku])
    stock = store.load_stock([(sku, wh) for wh in opening.routing], opening.stock_shards)
    plan = plan_reservations(
        ticket_id=ticket_id,
        model=ticket.model,
        wanted=wanted,
        parts=opening.parts,
        routing=opening.routing,
        stock=stock,
        now=now,
        hold=hold,
    )
    if not plan.held:
        raise OutOfStock(f"no warehouse serving {ticket.region} has {sku} available")
    (line,) = plan.held
    position = index if index >= 0 else len(ticket.parts)
    entry = TimelineEntry(
        at=now,
        kind="part_reserved",
        actor=actor,
        detail={"sku": sku, "qty": line.qty, "warehouse": line.warehouse, "reason": reason},
    )
    change = PartsChange(
        ticket=ticket,
        changes=[],
        entry=entry,
        new_lines={position: line},
        new_deltas=plan.deltas,
        replaced_lines={position: current} if current else {},
    )
    store.apply_parts_change(change)
    return store.get_ticket(ticket_id).ticket


class StockAdjustment(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    delta: StockDelta
    reason: str
    actor: str
    at: datetime


def adjust_stock(
    inventory: InventoryWriter,
    sku: str,
    warehouse: str,
    change: int,
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> StockLevel:
    """Receive goods (positive) or write off / correct a count (negative), with a reason."""
    if change == 0:
        raise PartsError("an adjustment must change the quantity")
    if not reason.strip():
        raise PartsError("an adjustment needs a reason")
    delta = StockDelta(sku=sku, warehouse=warehouse, on_hand=change)
    return inventory.adjust(StockAdjustment(delta=delta, reason=reason, actor=actor, at=now))


class LowStockEvent(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    sku: str
    warehouse: str
    version: int  # of the stock shard item whose change crossed the reorder point
    available: int
    reorder_point: int
    at: datetime
    suggestion: ReorderSuggestion
    shard: int = 0


def low_stock_event(
    old: StockLevel | None,
    new: StockLevel,
    *,
    consumed_in_window: int,
    backordered: int,
    lead_time_days: int,
    policy: ReorderPolicy,
    now: datetime,
    shard: int = 0,
) -> LowStockEvent | None:
    """The event for a change that takes availability to the reorder point or below, else None."""
    if old is None or not crossed_reorder_point(old.available, new.available, new.reorder_point):
        return None
    suggestion = suggest_reorder(
        new,
        consumed_in_window=consumed_in_window,
        backordered=backordered,
        lead_time_days=lead_time_days,
        policy=policy,
    )
    return LowStockEvent(
        sku=new.sku,
        warehouse=new.warehouse,
        version=new.version,
        available=new.available,
        reorder_point=new.reorder_point,
        at=now,
        suggestion=suggestion,
        shard=shard,
    )


def on_stock_change(
    old: StockLevel | None,
    new: StockLevel,
    *,
    backordered: int,
    lead_time_days: int,
    history: StockHistory,
    sink: LowStockSink,
    publish: Callable[[LowStockEvent], object],
    policy: ReorderPolicy,
    now: datetime,
    shard: int = 0,
) -> LowStockEvent | None:
    """Emit a low-stock event, once per crossing, with a fault-driven reorder suggestion.

    `old` and `new` are the (SKU, warehouse)'s totals before and after the change of stock
    shard `shard` (at its `new.version`), which names the crossing's marker."""
    if old is None or not crossed_reorder_point(old.available, new.available, new.reorder_point):
        return None
    since = now - timedelta(days=policy.window_days)
    event = low_stock_event(
        old,
        new,
        consumed_in_window=history.consumed_since(new.sku, new.warehouse, since),
        backordered=backordered,
        lead_time_days=lead_time_days,
        policy=policy,
        now=now,
        shard=shard,
    )
    if event is None or not sink.claim_low_stock(event):
        return None
    publish(event)
    sink.mark_published(event)
    return event


def sweep_expired_holds(
    holds: ExpiredHolds, store: PartsHolds, now: datetime, max_rounds: int = 20
) -> int:
    """Return every hold past its expiry to stock; each exactly once. Returns how many."""
    expired = 0
    for _ in range(max_rounds):
        batch = holds.expired_holds(now)
        if not batch:
            break
        moved = sum(
            expire_hold(store, item["ticket_id"], item["reservation_id"], now) for item in batch
        )
        expired += moved
        if moved == 0:
            break
    return expired

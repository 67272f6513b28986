"""Tickets waiting in dispatch for a backordered part, woken when a delivery arrives: apart from
the dispatch rules (`aftercare.domain.dispatching`), so the stock watcher, which only wakes
them, starts without the dispatch policy, calendar, prices and field models."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aftercare.models.tickets import TimelineEntry

if TYPE_CHECKING:
    from aftercare.domain.ports.dispatch import WaitingTickets


def wake_waiting(sku: str, waiting: WaitingTickets, *, now: datetime) -> list[str]:
    """A backorder of `sku` arrived: every ticket waiting for it is dispatched again."""
    entry = TimelineEntry(at=now, kind="dispatch_parts_arrived", actor="stock", detail={"sku": sku})
    return [t for t in waiting.waiting_for(sku) if waiting.wake(t, sku, entry)]

"""Ticket life cycle use cases on top of the state machine."""

from __future__ import annotations

from datetime import datetime

from aftercare.domain.ports import StatusChanges
from aftercare.domain.tickets import Ticket, plan_status_change
from aftercare.models.tickets import Resolution, TicketStatus


def change_status(
    store: StatusChanges,
    ticket_id: str,
    target: TicketStatus,
    *,
    actor: str,
    reason: str,
    now: datetime,
    resolution: Resolution | None = None,
) -> Ticket:
    """Move a ticket to `target` (validated by the state machine) with a timeline entry.

    A resolution is `remote` unless the ticket was `in_repair` (or the caller says so).
    Raises TicketNotFound, InvalidTransition, or ConcurrentUpdate if it moved meanwhile."""
    ticket = store.get_ticket(ticket_id).ticket
    change = plan_status_change(
        ticket, target, actor=actor, reason=reason, now=now, resolution=resolution
    )
    store.apply_status_change(change)
    return store.get_ticket(ticket_id).ticket


# A booked visit moves a ticket in these states to `scheduled` (in the booking's own write:
# `aftercare.domain.visit_moves.booked_move`); later states keep theirs.
SCHEDULABLE_FROM = frozenset(
    {TicketStatus.OPEN, TicketStatus.DIAGNOSING, TicketStatus.AWAITING_PARTS}
)

"""Ticket life cycle use cases on top of the state machine."""

from __future__ import annotations

from datetime import datetime

from aftercare.domain.ports import ConcurrentUpdate, StatusChanges
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


SCHEDULABLE_FROM = frozenset(
    {TicketStatus.OPEN, TicketStatus.DIAGNOSING, TicketStatus.AWAITING_PARTS}
)
MAX_SCHEDULE_ATTEMPTS = 3


def schedule_for_visit(
    store: StatusChanges, ticket_id: str, *, actor: str, booking_id: str, now: datetime
) -> Ticket:
    """A visit was booked: the ticket moves to `scheduled`, once.

    Idempotent: a ticket already `scheduled` (a retried booking) or past it (`in_repair`, or no
    longer active) is left as it is. A ticket that moved on between read and write is re-read."""
    for _ in range(MAX_SCHEDULE_ATTEMPTS):
        ticket = store.get_ticket(ticket_id).ticket
        if ticket.status not in SCHEDULABLE_FROM:
            return ticket
        change = plan_status_change(
            ticket,
            TicketStatus.SCHEDULED,
            actor=actor,
            reason=f"visit {booking_id} booked",
            now=now,
        )
        try:
            store.apply_status_change(change)
        except ConcurrentUpdate:
            continue
        return store.get_ticket(ticket_id).ticket
    raise ConcurrentUpdate(f"{ticket_id} kept changing while its visit was scheduled")

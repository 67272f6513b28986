"""Ticket life cycle use cases on top of the state machine."""

from __future__ import annotations

from datetime import datetime

from aftercare.domain.ports import TicketStore
from aftercare.domain.tickets import Ticket, TicketStatus, plan_status_change


def change_status(
    store: TicketStore,
    ticket_id: str,
    target: TicketStatus,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> Ticket:
    """Move a ticket to `target` (validated by the state machine) with a timeline entry.

    Raises TicketNotFound, InvalidTransition, or ConcurrentUpdate if it moved meanwhile."""
    ticket = store.get_ticket(ticket_id).ticket
    change = plan_status_change(ticket, target, actor=actor, reason=reason, now=now)
    store.apply_status_change(change)
    return store.get_ticket(ticket_id).ticket

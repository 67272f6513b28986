"""The old owner's open tickets when a device changes hands (transfer or release).

A device's open-fault lock is per device and fault code, so while the old owner's ticket for a
code stays active, a report of that code by the device (now the new owner's) would join it: the
new owner would be told nothing and the old owner would hear about a device they no longer
have. So right after the registry's owner moved, each of the old owner's active tickets on the
device that no visit is booked for (`open`, `diagnosing`, `awaiting_parts`) is **cancelled**
with the reason `ownership_transferred`: the ordinary status change, so in one transaction its
held parts are released (stock back), the lock is freed and its SLA escalation ends. The ticket
keeps its customer: it stays in the old owner's history (`GET /tickets/{id}`), and the next
report of the code opens a new ticket for the new owner.

A ticket with a visit booked or under way (`scheduled`, `in_repair`) is left to that visit
(cancelling the ticket would leave an engineer's booking live): it is reported as kept, and
until it ends, a report of its code still joins it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from aftercare.domain.lifecycle import change_status
from aftercare.domain.ports import ConcurrentUpdate, StatusChanges, TicketReader
from aftercare.domain.tickets import InvalidTransition
from aftercare.models.tickets import TicketStatus

HANDOVER_REASON = "ownership_transferred"
CLOSED_ON_HANDOVER = frozenset(
    {TicketStatus.OPEN, TicketStatus.DIAGNOSING, TicketStatus.AWAITING_PARTS}
)
MAX_ATTEMPTS = 3


class TicketHandover(StatusChanges, TicketReader, Protocol):
    """The tickets of a device, and their status changes."""


class HandoverOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    closed: list[str] = Field(default_factory=list)  # cancelled: ownership_transferred
    kept: list[str] = Field(default_factory=list)  # a visit is booked or under way


def close_on_handover(
    tickets: TicketHandover, thing: str, from_customer: str, *, actor: str, now: datetime
) -> HandoverOutcome:
    """Cancel the old owner's active tickets on `thing` that no visit holds (re-read by id:
    the device index may lag), releasing their parts and their open-fault locks."""
    closed, kept = [], []
    for listed in tickets.list_tickets(thing=thing):
        if listed.customer_id != from_customer or not listed.active:
            continue
        if _close(tickets, listed.ticket_id, actor=actor, now=now):
            closed.append(listed.ticket_id)
        else:
            kept.append(listed.ticket_id)
    return HandoverOutcome(closed=closed, kept=kept)


def _close(tickets: TicketHandover, ticket_id: str, *, actor: str, now: datetime) -> bool:
    for _ in range(MAX_ATTEMPTS):
        current = tickets.get_ticket(ticket_id).ticket
        if current.status not in CLOSED_ON_HANDOVER:
            return False
        try:
            change_status(
                tickets,
                ticket_id,
                TicketStatus.CANCELLED,
                actor=actor,
                reason=f"{HANDOVER_REASON}: the device has a new owner",
                now=now,
            )
        except ConcurrentUpdate:
            continue
        except InvalidTransition:
            return False
        return True
    return False

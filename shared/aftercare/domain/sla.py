"""Service-level breaches: a ticket answered or resolved after the time its SLA allowed.

Intake gives every ticket two due times from the policy (`sla_response_due`,
`sla_resolution_due`, by priority and customer tier). A change of the ticket record misses one
when it is

- the response: the ticket leaves `open` (an engineer or an automatic diagnosis takes it up, or
  it is resolved or cancelled straight away) after `sla_response_due`; a ticket sent back to
  `open` and taken up late again counts again;
- the resolution: the ticket becomes `resolved` after `sla_resolution_due`.

The function compares the ticket before and after a change (the stream consumer that sees
every change has both, so it counts breaches without another read).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketStatus


class SlaTargetKind(StrEnum):
    RESPONSE = "response"
    RESOLUTION = "resolution"


@dataclass(frozen=True)
class SlaBreach:
    """One missed target of one ticket: when it was due and when it was met."""

    ticket_id: str
    kind: SlaTargetKind
    due: datetime
    met_at: datetime

    @property
    def late_by(self) -> timedelta:
        return self.met_at - self.due


def _breach(
    ticket: Ticket, kind: SlaTargetKind, due: datetime, met_at: datetime
) -> SlaBreach | None:
    if met_at <= due:
        return None
    return SlaBreach(ticket_id=ticket.ticket_id, kind=kind, due=due, met_at=met_at)


def sla_breaches(old: Ticket | None, new: Ticket | None) -> list[SlaBreach]:
    """The SLA targets the change of a ticket from `old` to `new` met late (none, one or both).

    A new ticket (no `old`) or a change that keeps the status meets no target."""
    if old is None or new is None or old.status is new.status:
        return []
    found = []
    if old.status is TicketStatus.OPEN:
        found.append(_breach(new, SlaTargetKind.RESPONSE, new.sla_response_due, new.updated_at))
    if new.status is TicketStatus.RESOLVED:
        resolved_at = new.resolved_at or new.updated_at
        found.append(_breach(new, SlaTargetKind.RESOLUTION, new.sla_resolution_due, resolved_at))
    return [breach for breach in found if breach is not None]

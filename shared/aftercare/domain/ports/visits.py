"""What an engineer's visit changes on its ticket: a status change (with flags and the visit
record) or a parts change (consume/release, a timeline entry and the visit record), each one
version-guarded transaction of the ticket store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from aftercare.domain.ports.tickets import PartsHolds, StatusChanges

if TYPE_CHECKING:
    from aftercare.domain.tickets import Ticket


class VisitTickets(StatusChanges, PartsHolds, Protocol):
    """The ticket roles a visit uses (`DynamoTicketStore` implements them)."""

    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]:
        """The records of these tickets (missing ones left out), in as few reads as possible."""
        ...

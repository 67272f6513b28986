"""Ticket ports, one per role: intake's reads and writes, the read side, status changes, holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aftercare.domain.paging import TicketPage, TicketQuery
    from aftercare.domain.parts import StockLevel
    from aftercare.domain.ports.records import (
        ClassificationPlan,
        CorrelationPlan,
        IntakeContext,
        NewTicketPlan,
        OpenContext,
        PartsChange,
        RequestMark,
        TicketDetail,
    )
    from aftercare.domain.tickets import StatusChange, Ticket


class TicketLookup(Protocol):
    def get_ticket(self, ticket_id: str) -> TicketDetail:
        """The ticket with its occurrences and timeline. Raises TicketNotFound."""
        ...


class TicketReader(TicketLookup, Protocol):
    """The read side (API, CLI): one ticket, listings and pages newest first."""

    def list_tickets(
        self, *, status: str | None = None, thing: str | None = None
    ) -> list[Ticket]: ...

    def page_tickets(self, query: TicketQuery) -> TicketPage:
        """One page newest first, below `query.after`; see `aftercare.domain.paging`."""
        ...


class PartsContext(Protocol):
    """What reserving parts reads: customer, warehouse routing, parts master data, stock."""

    def load_open_context(self, customer_id: str, region: str, skus: list[str]) -> OpenContext:
        """Customer, the region's warehouse preference list and the parts' master data."""
        ...

    def load_stock(
        self, keys: list[tuple[str, str]], shards: Mapping[str, int] | None = None
    ) -> dict[tuple[str, str], StockLevel]:
        """Stock levels for (SKU, warehouse) pairs, in one read: totals, and the shard items
        (`shards`: each SKU's shard count from its master data; read when not given)."""
        ...


class IntakeStore(PartsContext, Protocol):
    """Fault intake: its reads, and the two writes that enforce the intake invariants."""

    def load_intake_context(self, thing: str, fault_code: str, fault_id: str) -> IntakeContext:
        """Device, open-fault lock, last resolution and dedup marker, in one read."""
        ...

    def open_ticket(self, plan: NewTicketPlan) -> None:
        """Create ticket + lock + dedup marker + part holds atomically.

        Raises DuplicateFault, LockConflict or OutOfStock (stock moved: plan again)."""
        ...

    def add_occurrence(self, plan: CorrelationPlan) -> None:
        """Append an occurrence atomically. Raises DuplicateFault or LockConflict."""
        ...


class RaisedTickets(IntakeStore, TicketLookup, Protocol):
    """Tickets people raise (customers, agents): intake's reads and writes, the requests'
    idempotency keys, and classifying an unclassified ticket."""

    def load_request(self, scope: str, key: str) -> RequestMark | None:
        """The stored Idempotency-Key of `scope`, if it was used (consistent read)."""
        ...

    def classify(self, plan: ClassificationPlan) -> None:
        """Give an unclassified ticket its code: the ticket (version-guarded, still active),
        the open-fault lock moved to the new code, part holds and the timeline, atomically.

        Raises CodeAlreadyOpen (another active ticket holds the code's lock), ConcurrentUpdate
        or OutOfStock (stock moved: plan again)."""
        ...


class StatusChanges(TicketLookup, Protocol):
    """Moving a ticket through its state machine."""

    def apply_status_change(self, change: StatusChange) -> None:
        """Raises ConcurrentUpdate when the ticket moved on since it was read."""
        ...


class PartsHolds(TicketLookup, PartsContext, Protocol):
    """Holding, releasing and expiring a ticket's parts outside a status change."""

    def apply_parts_change(self, change: PartsChange) -> None:
        """Raises ConcurrentUpdate (ticket or hold moved on) or OutOfStock."""
        ...


class TicketStore(IntakeStore, StatusChanges, PartsHolds, Protocol):
    """Every ticket write role at once (what `DynamoTicketStore` implements)."""

"""Dispatch's own writes: where a ticket stands in dispatch (`dispatch_state` on the ticket),
written with its timeline entry and, when a visit was booked, the move to `scheduled`; and the
parts lead times that say when a backorder is expected."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketStatus, TimelineEntry
from aftercare.models.visits import VisitOutcome


class DispatchState(StrEnum):
    """Where a dispatchable ticket stands. `wanted` asks the Dispatcher to (re)run."""

    WANTED = "wanted"
    BOOKED = "booked"
    AWAITING_CUSTOMER = "awaiting_customer"
    AWAITING_PARTS = "awaiting_parts"
    NO_CANDIDATE = "no_candidate"


class DispatchMark(BaseModel):
    """One dispatch decision on one ticket, applied only if the ticket's version is unchanged."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket: Ticket
    state: DispatchState
    entry: TimelineEntry
    to_status: TicketStatus | None = None
    flag: bool = False  # also set needs_onsite_dispatch (an engineer asked for a visit)
    waiting_skus: tuple[str, ...] = ()  # awaiting parts: wake the ticket when these arrive
    notes: tuple[TimelineEntry, ...] = ()  # further timeline entries written with the mark


class DispatchMarks(Protocol):
    def mark_dispatch(self, mark: DispatchMark) -> None:
        """Write the ticket's dispatch state (+ status, flag) and the timeline entry in one
        transaction; `ConcurrentUpdate` when the ticket's version moved on."""
        ...


class LeadTimes(Protocol):
    def lead_days(self, skus: list[str]) -> dict[str, int]:
        """Supplier lead time (days) of each known SKU."""
        ...


class WaitingTickets(Protocol):
    """Tickets waiting in dispatch for a backordered part (recorded with the decision)."""

    def waiting_for(self, sku: str) -> list[str]:
        """Ids of the tickets waiting for `sku`."""
        ...

    def wake(self, ticket_id: str, sku: str, entry: TimelineEntry) -> bool:
        """Ask the Dispatcher to run again for the ticket (`dispatch_state` awaiting_parts ->
        wanted, parts arrived now) and forget the wait; False when it was no longer waiting."""
        ...


class CustomerPreferences(Protocol):
    """What a customer's record says about who should visit them."""

    def preferred_engineers(self, customer_id: str) -> list[str]:
        """The engineers the customer prefers, in their order ([] when none or unknown)."""
        ...


class FixHistory(Protocol):
    """An engineer's visits on one product model and fault code (their first-time-fix record)."""

    def visit_outcomes(self, engineer_id: str, model: str, fault_code: str) -> list[VisitOutcome]:
        """The outcome of every recorded visit, in no particular order (one Query)."""
        ...

"""Diagnostics ports: requests and results beside their tickets, and the device's topics."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aftercare.domain.diagnostics_records import CompletionPlan, DiagnosticContext
    from aftercare.domain.tickets import Ticket
    from aftercare.models.diagnostics import DiagnosticRecord
    from aftercare.models.payloads import DiagnosticsCancel, DiagnosticsRequest
    from aftercare.models.tickets import TimelineEntry


class DiagnosticRequests(Protocol):
    """Starting a request, or recording that it never reached the device."""

    def load_ticket(self, ticket_id: str) -> Ticket:
        """The ticket record alone. Raises TicketNotFound."""
        ...

    def create(self, record: DiagnosticRecord, entry: TimelineEntry) -> bool:
        """Store a new pending request with its timeline entry, in one write that also checks
        the ticket is still active; False if it already exists. Raises TicketNotActive (with
        the ticket's current status) when the ticket is not active any more."""
        ...

    def fail(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        """Mark a pending request `failed` (it never reached the device)."""
        ...

    def for_ticket(self, ticket_id: str) -> list[DiagnosticRecord]: ...


class SelfServiceAttempts(Protocol):
    """Recording a customer's "I followed the guide" and the verification it asks for."""

    def create_attempt(
        self, record: DiagnosticRecord, entries: list[TimelineEntry], attempt: int
    ) -> None:
        """Store the verification request (new) with its timeline entries and set the ticket's
        `self_service_attempts` to `attempt`, in one write conditioned on the ticket being active
        with `attempt - 1` attempts. Raises TicketNotActive when it is not active any more, and
        VerificationPending when another attempt got there first."""
        ...


class DiagnosticResults(Protocol):
    """Judging an answer, a timeout or a cancellation of one request."""

    def load(self, ticket_id: str, request_id: str) -> DiagnosticContext:
        """The ticket and one of its diagnostics, in one read."""
        ...

    def complete(self, plan: CompletionPlan) -> None:
        """Apply a plan atomically. Raises ConcurrentUpdate if the request is no longer pending
        or the ticket moved on since it was read."""
        ...

    def cancel(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        """Store a request as `cancelled` with its timeline entry. Raises ConcurrentUpdate if it
        is no longer pending (answered, timed out or cancelled meanwhile)."""
        ...


class DiagnosticsDue(Protocol):
    """Pending requests past their deadline."""

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(ticket_id, request_id) of pending requests whose deadline passed before `now`."""
        ...


class DiagnosticsStore(DiagnosticRequests, DiagnosticResults, DiagnosticsDue, Protocol):
    """Diagnostics records beside their tickets (see the TicketsTable comment)."""


class CommandPublisher(Protocol):
    """Hands a request to the device's command topic (QoS 1). Raises PublishFailed."""

    def publish(self, thing: str, request: DiagnosticsRequest) -> None: ...


class CancelPublisher(Protocol):
    """Tells a device not to run (or answer) a request (QoS 1). Raises PublishFailed."""

    def publish_cancel(self, thing: str, cancel: DiagnosticsCancel) -> None: ...

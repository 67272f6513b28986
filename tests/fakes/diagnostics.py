"""In-memory DiagnosticsStore, CommandPublisher and CancelPublisher, with the adapter's
conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.domain.diagnostics_records import (
    CompletionPlan,
    DiagnosticContext,
    PublishFailed,
    TicketNotActive,
    VerificationPending,
)
from aftercare.domain.ports import ConcurrentUpdate, TicketNotFound
from aftercare.domain.tickets import Ticket, ticket_id_for
from aftercare.models.diagnostics import DiagnosticRecord, DiagnosticState
from aftercare.models.payloads import DiagnosticsCancel, DiagnosticsRequest, Severity
from aftercare.models.tickets import TicketStatus, TimelineEntry

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_ticket(
    fault_code: str = "WIFI-DROP",
    *,
    thing: str = "rt-x-0001",
    status: TicketStatus = TicketStatus.OPEN,
    routine: str = "reset_component",
    auto_diagnose: bool = True,
    model: str = "RT-X",
    **extra: Any,
) -> Ticket:
    return Ticket(
        ticket_id=ticket_id_for(thing, f"fault-{fault_code}"),
        thing=thing,
        serial="RTX1",
        model=model,
        customer_id="c-0001",
        customer_tier="standard",
        region="eu-west",
        fault_code=fault_code,
        category="connectivity",
        title_en=fault_code,
        title_zh=fault_code,
        unclassified=False,
        severity=Severity.MINOR,
        priority="P3",
        in_warranty=True,
        status=status,
        opened_at=NOW,
        updated_at=NOW,
        first_seen=NOW,
        last_seen=NOW,
        occurrences=1,
        firmware="1.0.0",
        sla_response_due=NOW + timedelta(hours=24),
        sla_resolution_due=NOW + timedelta(hours=72),
        routine=routine,
        remote_fixable=routine == "reset_component",
        auto_diagnose=auto_diagnose,
        catalog_version="test",
        policy_version="test",
        opened_by_fault=f"fault-{fault_code}",
        **extra,
    )


class FakeDiagnosticsStore:
    def __init__(self, *tickets: Ticket) -> None:
        self.tickets = {t.ticket_id: t for t in tickets}
        self.records: dict[str, DiagnosticRecord] = {}
        self.timeline: dict[str, list[TimelineEntry]] = {}
        self.revs: dict[str, int] = {}
        self.conflicts = 0  # how many complete() calls fail with ConcurrentUpdate first
        self.completed: list[CompletionPlan] = []

    def load_ticket(self, ticket_id: str) -> Ticket:
        if ticket_id not in self.tickets:
            raise TicketNotFound(ticket_id)
        return self.tickets[ticket_id]

    def load(self, ticket_id: str, request_id: str) -> DiagnosticContext:
        record = self.records.get(request_id)
        return DiagnosticContext(
            ticket=self.tickets.get(ticket_id),
            record=record if record and record.ticket_id == ticket_id else None,
            rev=self.revs.get(ticket_id, 0),
        )

    def create(self, record: DiagnosticRecord, entry: TimelineEntry) -> bool:
        ticket = self.tickets.get(record.ticket_id)
        if ticket is None:
            raise TicketNotFound(record.ticket_id)
        if not ticket.active:
            raise TicketNotActive(ticket.ticket_id, ticket.status)
        if record.request_id in self.records:
            return False
        self.records[record.request_id] = record
        self.timeline.setdefault(record.ticket_id, []).append(entry)
        return True

    def create_attempt(
        self, record: DiagnosticRecord, entries: list[TimelineEntry], attempt: int
    ) -> None:
        ticket = self.load_ticket(record.ticket_id)
        if not ticket.active:
            raise TicketNotActive(ticket.ticket_id, ticket.status)
        if ticket.self_service_attempts != attempt - 1 or record.request_id in self.records:
            raise VerificationPending(f"attempt {attempt} on {ticket.ticket_id} was taken")
        self.tickets[ticket.ticket_id] = ticket.model_copy(
            update={"self_service_attempts": attempt}
        )
        self.records[record.request_id] = record
        self.timeline.setdefault(record.ticket_id, []).extend(entries)

    def fail(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        self._require_pending(record)
        self.records[record.request_id] = record.model_copy(
            update={"status": DiagnosticState.FAILED}
        )
        self.timeline.setdefault(record.ticket_id, []).append(entry)

    def cancel(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        self._require_pending(record)
        self.records[record.request_id] = record
        self.timeline.setdefault(record.ticket_id, []).append(entry)

    def _require_pending(self, record: DiagnosticRecord) -> None:
        stored = self.records.get(record.request_id)
        if stored is None or stored.status is not DiagnosticState.PENDING:
            raise ConcurrentUpdate("ConditionalCheckFailed")

    def complete(self, plan: CompletionPlan) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise ConcurrentUpdate("TransactionConflict")
        ticket_id = plan.record.ticket_id
        self._require_pending(plan.record)
        ticket = self.tickets[ticket_id]
        if plan.status_change is not None:
            change = plan.status_change
            if (ticket.status, ticket.version) != (change.ticket.status, change.ticket.version):
                raise ConcurrentUpdate("ConditionalCheckFailed")
            ticket = ticket.model_copy(
                update={
                    "status": change.target,
                    "resolution": change.resolution,
                    "version": ticket.version + 1,
                }
            )
            self.timeline.setdefault(ticket_id, []).append(change.entry)
        elif plan.ticket_patch is not None:
            patch = plan.ticket_patch
            if (
                ticket.status != patch.expected_status
                or self.revs.get(ticket_id, 0) != patch.expected_rev
            ):
                raise ConcurrentUpdate("ConditionalCheckFailed")
            ticket = ticket.model_copy(
                update={"flags": patch.flags, "suggested_parts": patch.suggested_parts}
            )
            self.revs[ticket_id] = patch.expected_rev + 1
        self.tickets[ticket_id] = ticket
        self.records[plan.record.request_id] = plan.record
        self.timeline.setdefault(ticket_id, []).extend(plan.entries)
        if plan.follow_up is not None:
            self.records[plan.follow_up.request_id] = plan.follow_up
        self.completed.append(plan)

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        return [
            (r.ticket_id, r.request_id)
            for r in self.records.values()
            if r.status is DiagnosticState.PENDING and r.expires_at <= now
        ][:limit]

    def for_ticket(self, ticket_id: str) -> list[DiagnosticRecord]:
        return sorted(
            (r for r in self.records.values() if r.ticket_id == ticket_id),
            key=lambda r: r.requested_at,
        )

    def kinds(self, ticket_id: str) -> list[str]:
        return [e.kind for e in self.timeline.get(ticket_id, [])]


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, DiagnosticsRequest]] = []
        self.cancels: list[tuple[str, DiagnosticsCancel]] = []
        self.failing = False

    def publish(self, thing: str, request: DiagnosticsRequest) -> None:
        if self.failing:
            raise PublishFailed("broker unreachable")
        self.published.append((thing, request))

    def publish_cancel(self, thing: str, cancel: DiagnosticsCancel) -> None:
        if self.failing:
            raise PublishFailed("broker unreachable")
        self.cancels.append((thing, cancel))

"""In-memory TicketStore / ParkedStore with the same invariants as the DynamoDB adapter."""

from __future__ import annotations

from datetime import datetime

from aftercare.domain.ports import (
    ConcurrentUpdate,
    CorrelationPlan,
    CustomerRecord,
    DeviceRecord,
    DuplicateFault,
    IntakeContext,
    LastResolution,
    LockConflict,
    NewTicketPlan,
    OpenLock,
    ParkedMessage,
    TicketDetail,
    TicketNotFound,
)
from aftercare.domain.tickets import Occurrence, StatusChange, Ticket, TimelineEntry


class FakeTicketStore:
    def __init__(self) -> None:
        self.devices: dict[str, DeviceRecord] = {}
        self.customers: dict[str, CustomerRecord] = {}
        self.tickets: dict[str, Ticket] = {}
        self.occurrences: dict[str, list[Occurrence]] = {}
        self.timeline: dict[str, list[TimelineEntry]] = {}
        self.locks: dict[tuple[str, str], OpenLock] = {}
        self.resolutions: dict[tuple[str, str], LastResolution] = {}
        self.seen: dict[tuple[str, str], str] = {}
        self.requests = 0

    def load_intake_context(self, thing: str, fault_code: str, fault_id: str) -> IntakeContext:
        self.requests += 1
        seen = self.seen.get((thing, fault_id))
        return IntakeContext(
            device=self.devices.get(thing),
            lock=self.locks.get((thing, fault_code)),
            last_resolution=self.resolutions.get((thing, fault_code)),
            seen=seen is not None,
            seen_in_ticket=seen,
        )

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        self.requests += 1
        return self.customers.get(customer_id)

    def open_ticket(self, plan: NewTicketPlan) -> None:
        self.requests += 1
        t = plan.ticket
        if (t.thing, plan.occurrence.fault_id) in self.seen:
            raise DuplicateFault(self.seen[(t.thing, plan.occurrence.fault_id)])
        if (t.thing, t.fault_code) in self.locks:
            raise LockConflict("lock exists")
        self.locks[(t.thing, t.fault_code)] = OpenLock(
            ticket_id=t.ticket_id, occurrences=1, last_seen=t.last_seen
        )
        self.seen[(t.thing, plan.occurrence.fault_id)] = t.ticket_id
        self.tickets[t.ticket_id] = t
        self.occurrences[t.ticket_id] = [plan.occurrence]
        self.timeline[t.ticket_id] = list(plan.timeline)
        if plan.repeat_entry and t.repeat_of:
            self.timeline[t.repeat_of].append(plan.repeat_entry)

    def add_occurrence(self, plan: CorrelationPlan) -> None:
        self.requests += 1
        if (plan.thing, plan.occurrence.fault_id) in self.seen:
            raise DuplicateFault(self.seen[(plan.thing, plan.occurrence.fault_id)])
        lock = self.locks.get((plan.thing, plan.fault_code))
        if lock is None or lock.occurrences != plan.expected_occurrences:
            raise LockConflict("lock moved")
        count = plan.expected_occurrences + 1
        self.locks[(plan.thing, plan.fault_code)] = OpenLock(
            ticket_id=plan.ticket_id, occurrences=count, last_seen=plan.last_seen
        )
        self.seen[(plan.thing, plan.occurrence.fault_id)] = plan.ticket_id
        ticket = self.tickets[plan.ticket_id]
        update: dict[str, object] = {"occurrences": count, "last_seen": plan.last_seen}
        if plan.takes_latest:
            update["latest_readings"] = plan.occurrence.readings
        self.tickets[plan.ticket_id] = ticket.model_copy(update=update)
        self.occurrences[plan.ticket_id].append(plan.occurrence)

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        if ticket_id not in self.tickets:
            raise TicketNotFound(ticket_id)
        return TicketDetail(
            ticket=self.tickets[ticket_id],
            occurrences=self.occurrences[ticket_id],
            timeline=self.timeline[ticket_id],
        )

    def apply_status_change(self, change: StatusChange) -> None:
        current = self.tickets[change.ticket.ticket_id]
        if current.status != change.ticket.status or current.version != change.ticket.version:
            raise ConcurrentUpdate("moved on")
        at: datetime = change.entry.at
        update: dict[str, object] = {"status": change.target, "version": current.version + 1}
        if change.records_resolution:
            update["resolved_at"] = at
            self.resolutions[(current.thing, current.fault_code)] = LastResolution(
                ticket_id=current.ticket_id, resolved_at=at
            )
        if change.releases_lock:
            self.locks.pop((current.thing, current.fault_code), None)
        self.tickets[current.ticket_id] = current.model_copy(update=update)
        self.timeline[current.ticket_id].append(change.entry)


class FakeParkedStore:
    def __init__(self) -> None:
        self.parked: dict[tuple[str, str], ParkedMessage] = {}

    def park(self, message: ParkedMessage) -> None:
        self.parked[(message.source, message.message_id)] = message

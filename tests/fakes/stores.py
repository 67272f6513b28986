"""In-memory TicketStore / ParkedStore with the same invariants as the DynamoDB adapter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aftercare.domain.parts import OutOfStock, PartInfo, StockDelta, StockLevel
from aftercare.domain.ports import (
    CodeAlreadyOpen,
    ConcurrentUpdate,
    DuplicateFault,
    LockConflict,
    TaskAlreadyDone,
    TaskNotFound,
    TicketNotFound,
)
from aftercare.domain.ports.parked import ParkedMessage
from aftercare.domain.ports.records import (
    ClassificationPlan,
    CorrelationPlan,
    CustomerRecord,
    DeviceRecord,
    EscalationTracker,
    IntakeContext,
    LastResolution,
    NewTicketPlan,
    OpenContext,
    OpenLock,
    PartsChange,
    RequestMark,
    TicketDetail,
)
from aftercare.domain.tickets import StatusChange, Ticket
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.tasks import Task, TaskStatus
from aftercare.models.tickets import Occurrence, TimelineEntry
from aftercare.models.visits import VisitRecord


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
        self.routing: dict[str, list[str]] = {}
        self.parts: dict[str, PartInfo] = {}
        self.stock: dict[tuple[str, str], StockLevel] = {}
        self.reservations: dict[str, PartsLine] = {}
        self.visits: dict[str, dict[str, VisitRecord]] = {}
        self.marks: dict[tuple[str, str], RequestMark] = {}
        self.tasks: dict[str, Task] = {}
        self.escalations: dict[str, EscalationTracker | None] = {}  # the ticket's esc_* attributes
        self.requests = 0

    # ------------------------------------------------------------------ inventory
    def load_open_context(self, customer_id: str, region: str, skus: list[str]) -> OpenContext:
        self.requests += 1
        return OpenContext(
            customer=self.customers.get(customer_id),
            routing=self.routing.get(region, []) if skus else [],
            parts={sku: self.parts[sku] for sku in skus if sku in self.parts},
        )

    def load_stock(
        self, keys: list[tuple[str, str]], shards: Mapping[str, int] | None = None
    ) -> dict[tuple[str, str], StockLevel]:
        """Unsharded levels: every delta is on shard 0, the level's totals."""
        self.requests += 1
        return {k: self.stock[k] for k in keys if k in self.stock}

    def _check(self, deltas: list[StockDelta]) -> None:
        for d in deltas:
            level = self.stock.get((d.sku, d.warehouse))
            if level is None or level.available < d.need:
                raise OutOfStock(f"{d.sku}@{d.warehouse}")

    def _apply(self, deltas: list[StockDelta]) -> None:
        for d in deltas:
            level = self.stock[(d.sku, d.warehouse)]
            self.stock[(d.sku, d.warehouse)] = level.model_copy(
                update={
                    "on_hand": level.on_hand + d.on_hand,
                    "held": level.held + d.held,
                    "version": level.version + 1,
                }
            )

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

    def load_request(self, scope: str, key: str) -> RequestMark | None:
        self.requests += 1
        return self.marks.get((scope, key))

    def _check_mark(self, mark: RequestMark | None) -> None:
        if mark is not None and (mark.scope, mark.key) in self.marks:
            raise DuplicateFault(self.marks[(mark.scope, mark.key)].ticket_id)

    def _put_mark(self, mark: RequestMark | None) -> None:
        if mark is not None:
            self.marks[(mark.scope, mark.key)] = mark

    def open_ticket(self, plan: NewTicketPlan) -> None:
        self.requests += 1
        t = plan.ticket
        if (t.thing, plan.occurrence.fault_id) in self.seen:
            raise DuplicateFault(self.seen[(t.thing, plan.occurrence.fault_id)])
        self._check_mark(plan.request)
        if (t.thing, t.fault_code) in self.locks:
            raise LockConflict("lock exists")
        self._check(plan.reservation.deltas)
        self._apply(plan.reservation.deltas)
        for line in plan.reservation.lines:
            self.reservations[line.reservation_id] = line
        self.locks[(t.thing, t.fault_code)] = OpenLock(
            ticket_id=t.ticket_id, occurrences=1, last_seen=t.last_seen
        )
        self.seen[(t.thing, plan.occurrence.fault_id)] = t.ticket_id
        self._put_mark(plan.request)
        self.tickets[t.ticket_id] = t
        self.escalations[t.ticket_id] = plan.escalation
        self.occurrences[t.ticket_id] = [plan.occurrence]
        self.timeline[t.ticket_id] = list(plan.timeline)
        if plan.task is not None and plan.task_entry is not None:
            self.tasks[plan.task.task_id] = plan.task
            self.timeline[t.ticket_id].append(plan.task_entry)
        if plan.repeat_entry and t.repeat_of:
            self.timeline[t.repeat_of].append(plan.repeat_entry)

    def add_occurrence(self, plan: CorrelationPlan) -> None:
        self.requests += 1
        if (plan.thing, plan.occurrence.fault_id) in self.seen:
            raise DuplicateFault(self.seen[(plan.thing, plan.occurrence.fault_id)])
        self._check_mark(plan.request)
        lock = self.locks.get((plan.thing, plan.fault_code))
        if lock is None or lock.occurrences != plan.expected_occurrences:
            raise LockConflict("lock moved")
        self._put_mark(plan.request)
        if plan.entry is not None:
            self.timeline[plan.ticket_id].append(plan.entry)
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

    def classify(self, plan: ClassificationPlan) -> None:
        self.requests += 1
        before, after = plan.ticket, plan.classified
        if self.tickets[before.ticket_id].version != before.version:
            raise ConcurrentUpdate("ticket moved")
        taken = self.locks.get((after.thing, after.fault_code))
        if taken is not None:
            raise CodeAlreadyOpen(after.thing, after.fault_code, taken.ticket_id)
        self._check(plan.reservation.deltas)
        self._apply(plan.reservation.deltas)
        for line in plan.reservation.lines:
            self.reservations[line.reservation_id] = line
        lock = self.locks.pop((before.thing, before.fault_code))
        self.locks[(after.thing, after.fault_code)] = lock
        self.tickets[after.ticket_id] = after
        self.timeline[after.ticket_id].extend(plan.timeline)
        self.escalations[after.ticket_id] = plan.escalation

    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]:
        return {t: self.tickets[t] for t in ticket_ids if t in self.tickets}

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        if ticket_id not in self.tickets:
            raise TicketNotFound(ticket_id)
        return TicketDetail(
            ticket=self.tickets[ticket_id],
            occurrences=self.occurrences[ticket_id],
            timeline=self.timeline[ticket_id],
            visits=list(self.visits.get(ticket_id, {}).values()),
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
        update["parts"] = self._move_lines(current, change.part_changes)
        if change.records_resolution:
            update["resolution"] = change.resolution
        if change.flags is not None:
            update |= {"flags": change.flags, "dispatch_reason": change.dispatch_reason}
        self.tickets[current.ticket_id] = current.model_copy(update=update)
        self.timeline[current.ticket_id].append(change.entry)
        self._visit(change.visit)

    def _visit(self, visit: VisitRecord | None) -> None:
        if visit is not None:
            self.visits.setdefault(visit.ticket_id, {})[visit.booking_id] = visit
            ticket = self.tickets[visit.ticket_id]
            self.tickets[visit.ticket_id] = ticket.model_copy(update={"visit": visit.summary()})

    def _move_lines(self, ticket: Ticket, changes: list) -> list[PartsLine]:
        deltas = [c.delta for c in changes if c.delta is not None]
        self._check(deltas)
        for c in changes:
            held = self.reservations[c.line.reservation_id]
            if held.status is not c.line.status:
                raise ConcurrentUpdate("reservation moved on")
        self._apply(deltas)
        parts = list(ticket.parts)
        for c in changes:
            parts[c.index] = parts[c.index].model_copy(update={"status": c.to})
            self.reservations[c.line.reservation_id] = c.line.model_copy(update={"status": c.to})
        return parts

    def apply_parts_change(self, change: PartsChange) -> None:
        current = self.tickets[change.ticket.ticket_id]
        if current.version != change.ticket.version:
            raise ConcurrentUpdate("moved on")
        self._check(change.new_deltas)
        parts = self._move_lines(current, change.changes)
        self._apply(change.new_deltas)
        for index, line in change.new_lines.items():
            if index < len(parts):
                parts[index] = line
            else:
                parts.append(line)
            self.reservations[line.reservation_id] = line
        update: dict[str, object] = {"parts": parts, "version": current.version + 1}
        if change.flags is not None:
            update |= {"flags": change.flags, "dispatch_reason": change.dispatch_reason}
        self.tickets[current.ticket_id] = current.model_copy(update=update)
        self.timeline[current.ticket_id].append(change.entry)
        self._visit(change.visit)

    def held_units(self) -> int:
        return sum(
            line.qty for line in self.reservations.values() if line.status is LineStatus.HELD
        )


class FakeTaskStore:
    """The tasks a FakeTicketStore opened with its tickets (and their timelines)."""

    def __init__(self, tickets: FakeTicketStore) -> None:
        self.tickets = tickets
        self.tasks = tickets.tasks

    def list_tasks(self, status: str | None = None) -> list[Task]:
        found = [t for t in self.tasks.values() if status is None or t.task_status == status]
        return sorted(found, key=lambda t: (t.due_at, t.task_id))

    def complete_task(self, task_id: str, *, by: str, at: datetime, note: str | None) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if task.task_status is TaskStatus.DONE:
            raise TaskAlreadyDone(task_id)
        done = task.model_copy(
            update={"task_status": TaskStatus.DONE, "done_at": at, "done_by": by, "note": note}
        )
        self.tasks[task_id] = done
        entry = TimelineEntry(
            at=at, kind="callback_done", actor=by, detail={"task_id": task_id, "note": note}
        )
        self.tickets.timeline[task.ticket_id].append(entry)
        return done


class FakeParkedStore:
    def __init__(self) -> None:
        self.parked: dict[tuple[str, str], ParkedMessage] = {}
        self.writes: list[ParkedMessage] = []  # every call, to show a message is parked once

    def park(self, message: ParkedMessage) -> None:
        self.writes.append(message)
        self.parked[(message.source, message.message_id)] = message

"""TicketsTable (and InventoryTable) transactions of the ticket use cases, as pure builders.

Every item is built with what its condition failing means (`Failure`); each use case turns
a cancelled transaction into its domain error (`intake_error`, `change_error`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aftercare.adapters.aws import to_attr, to_item
from aftercare.adapters.escalation import REMOVE_ESCALATION, tracker_attributes
from aftercare.adapters.incident_keys import link_put
from aftercare.adapters.inventory import (
    backorder_count,
    backorder_update,
    line_change_items,
    reservation_put,
    stock_update,
)
from aftercare.adapters.tasks import add_task_items
from aftercare.adapters.ticket_items import (
    NEW,
    conditional_put,
    dedup_key,
    iso,
    last_resolution_key,
    lock_key,
    occurrence_item,
    request_item,
    ticket_item,
    ticket_key,
    timeline_item,
    visit_key,
    visit_put,
)
from aftercare.adapters.transactions import Cancelled, Failure, TxItem
from aftercare.domain.parts import OutOfStock
from aftercare.domain.ports import (
    ClassificationPlan,
    CodeAlreadyOpen,
    ConcurrentUpdate,
    CorrelationPlan,
    DuplicateFault,
    LockConflict,
    NewTicketPlan,
    PartsChange,
)
from aftercare.domain.tickets import ACTIVE_STATES, StatusChange, Ticket
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import TicketFlag, TimelineEntry
from aftercare.models.visits import VisitOutcome, VisitRecord


def open_ticket_items(
    table: str,
    plan: NewTicketPlan,
    inventory_table: str | None = None,
    incidents_table: str | None = None,
) -> list[TxItem]:
    """Lock, ticket, its first occurrence carrying its opening timeline entries, the repeat
    link and the part holds (with their stock updates), each with what its condition failing
    means.

    No dedup marker: the ticket's id is derived from (thing, fault_id), so its conditional put
    fails for a fault that already opened it (a duplicate), and intake's batch read finds it.
    No escalation tracker item either: the schedule's first step is attributes of the ticket's
    own put. No timeline items either: the opening entries ride on the occurrence's item (see
    `OPENING_ENTRIES`). Each transaction item costs 2 WRU (each was a fifth of a new fault's
    writes; the opening entry alone was 2 of the 9)."""
    ticket = plan.ticket
    lock = {
        **lock_key(ticket.thing, ticket.fault_code),
        "ticket_id": ticket.ticket_id,
        "occurrences": 1,
        "last_seen": iso(ticket.last_seen),
    }
    record = ticket_item(ticket)
    if plan.escalation is not None:
        record |= tracker_attributes(plan.escalation)  # in by_escalation from the start
    items = [
        conditional_put(table, lock, NEW, Failure.LOCK_TAKEN),
        conditional_put(table, record, NEW, Failure.DUPLICATE),
        conditional_put(table, occurrence_item(ticket.ticket_id, plan.occurrence, plan.timeline)),
    ]
    if plan.repeat_entry is not None and ticket.repeat_of:
        items += _link_repeat(table, ticket, plan.repeat_entry)
        if plan.repeat_visit:
            items.append(_repeat_against_visit(table, ticket, plan.repeat_visit))
    if plan.request is not None:
        items.append(conditional_put(table, request_item(plan.request), NEW, Failure.DUPLICATE))
    if plan.task is not None and plan.task_entry is not None:
        items += add_task_items(table, plan.task, plan.task_entry)
    if plan.reservation.lines:
        if inventory_table is None:
            raise ValueError("part holds need the inventory table")
        items += _reservation_items(inventory_table, ticket.ticket_id, plan)
    if plan.incident_link is not None:
        if incidents_table is None:
            raise ValueError("an incident child needs the incidents table")
        items.append(TxItem(link_put(incidents_table, plan.incident_link), Failure.DUPLICATE))
    return items


def _reservation_items(table: str, ticket_id: str, plan: NewTicketPlan) -> list[TxItem]:
    lines = plan.reservation.lines
    items = [reservation_put(table, ticket_id, i, line) for i, line in enumerate(lines)]
    items += [
        backorder_count(table, line, line.qty)
        for line in lines
        if line.status is LineStatus.BACKORDERED and line.warehouse
    ]
    return items + [stock_update(table, delta) for delta in plan.reservation.deltas]


def _link_repeat(table: str, ticket: Ticket, entry: TimelineEntry) -> list[TxItem]:
    earlier = str(ticket.repeat_of)
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(earlier)),
            "UpdateExpression": "ADD repeated_by :new",
            "ExpressionAttributeValues": {":new": {"SS": [ticket.ticket_id]}},
        }
    }
    return [TxItem(update), conditional_put(table, timeline_item(earlier, entry))]


def _repeat_against_visit(table: str, ticket: Ticket, booking_id: str) -> TxItem:
    """The earlier ticket's fixing visit learns its fix did not last (first-time fix lost).

    No condition: the visit item was written in the transaction that wrote the resolution
    naming it, and is never deleted."""
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(visit_key(str(ticket.repeat_of), booking_id)),
            "UpdateExpression": "SET outcome = :repeated, first_time_fix = :no, repeat_ticket = :t",
            "ExpressionAttributeValues": {
                ":repeated": to_attr(VisitOutcome.REPEATED.value),
                ":no": to_attr(False),
                ":t": to_attr(ticket.ticket_id),
            },
        }
    }
    return TxItem(update)


def correlation_items(table: str, plan: CorrelationPlan) -> list[TxItem]:
    """The lock (guarded by its occurrence count), the dedup marker, the ticket's counters and
    the occurrence."""
    count = plan.expected_occurrences + 1
    lock_update = {
        "Update": {
            "TableName": table,
            "Key": to_item(lock_key(plan.thing, plan.fault_code)),
            "UpdateExpression": "SET occurrences = :next, last_seen = :last",
            "ConditionExpression": "ticket_id = :tid AND occurrences = :expected",
            "ExpressionAttributeValues": {
                ":next": to_attr(count),
                ":last": to_attr(iso(plan.last_seen)),
                ":tid": to_attr(plan.ticket_id),
                ":expected": to_attr(plan.expected_occurrences),
            },
        }
    }
    marker = {
        **dedup_key(plan.thing, plan.occurrence.fault_id),
        "ticket_id": plan.ticket_id,
        "expires_at": plan.dedup_expires_at,
    }
    items = [
        TxItem(lock_update, Failure.LOCK_TAKEN),
        conditional_put(table, marker, NEW, Failure.DUPLICATE),
        _ticket_occurrence_update(table, plan, count),
        conditional_put(table, occurrence_item(plan.ticket_id, plan.occurrence)),
    ]
    if plan.entry is not None:
        items.append(conditional_put(table, timeline_item(plan.ticket_id, plan.entry)))
    if plan.request is not None:
        items.append(conditional_put(table, request_item(plan.request), NEW, Failure.DUPLICATE))
    return items


def _ticket_occurrence_update(table: str, plan: CorrelationPlan, count: int) -> TxItem:
    sets = ["occurrences = :next", "last_seen = :last", "updated_at = :now"]
    values: dict[str, Any] = {
        ":next": count,
        ":last": iso(plan.last_seen),
        ":now": iso(plan.updated_at),
    }
    if plan.takes_latest:
        sets += ["latest_readings = :readings", "firmware = :firmware"]
        values |= {":readings": plan.occurrence.readings, ":firmware": plan.occurrence.firmware}
        if plan.occurrence.message is not None:
            sets.append("latest_message = :message")
            values[":message"] = plan.occurrence.message
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(plan.ticket_id)),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
    }
    return TxItem(update)


def status_change_items(
    table: str, change: StatusChange, inventory_table: str | None = None
) -> list[TxItem]:
    ticket = change.ticket
    sets = ["#status = :to", "updated_at = :now", "version = :next"]
    sets += [f"parts[{c.index}].#status = :part{c.index}" for c in change.part_changes]
    values: dict[str, Any] = {
        ":to": change.target.value,
        ":from": ticket.status.value,
        ":now": iso(change.entry.at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
    }
    if change.records_resolution:
        sets += ["resolved_at = :now", "resolution = :resolution"]
        values[":resolution"] = change.resolution.value if change.resolution else None
    sets, values = _visit_sets(change.visit, change.flags, change.dispatch_reason, sets, values)
    values |= {f":part{c.index}": c.to.value for c in change.part_changes}
    expression = "SET " + ", ".join(sets)
    if change.releases_lock:  # leaves the active states: its escalation schedule ends
        expression += " " + REMOVE_ESCALATION
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(ticket.ticket_id)),
            "UpdateExpression": expression,
            "ConditionExpression": "#status = :from AND version = :version",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
    }
    items = [
        TxItem(update, Failure.STALE),
        conditional_put(table, timeline_item(ticket.ticket_id, change.entry)),
    ]
    if change.releases_lock:
        items.append(_release_lock(table, ticket))
    if change.visit is not None:
        items.append(visit_put(table, change.visit))
    if change.records_resolution:
        last = {
            **last_resolution_key(ticket.thing, ticket.fault_code),
            "ticket_id": ticket.ticket_id,
            "resolved_at": iso(change.entry.at),
        }
        if change.visit is not None:
            last["visit_id"] = change.visit.booking_id
        items.append(conditional_put(table, last))
    if change.part_changes and inventory_table is None:
        raise ValueError("parts lines need the inventory table")
    for part_change in change.part_changes:
        items += line_change_items(str(inventory_table), part_change, change.entry.at)
    return items


def _visit_sets(
    visit: VisitRecord | None,
    flags: list[TicketFlag] | None,
    dispatch_reason: str | None,
    sets: list[str],
    values: dict[str, Any],
) -> tuple[list[str], dict[str, Any]]:
    """A visit's change on the ticket record: its summary, and the flags it sets."""
    if visit is not None:
        sets = [*sets, "visit = :visit"]
        values = {**values, ":visit": visit.summary().model_dump(mode="json")}
    if flags is not None:
        sets = [*sets, "flags = :flags", "dispatch_reason = :dispatch_reason"]
        values = {
            **values,
            ":flags": [f.value for f in flags],
            ":dispatch_reason": dispatch_reason,
        }
    return sets, values


def parts_change_items(table: str, inventory_table: str, change: PartsChange) -> list[TxItem]:
    """Lines moving (expiry, manual release) or newly held, with the ticket's version guard."""
    ticket = change.ticket
    sets = ["updated_at = :now", "version = :next"]
    values: dict[str, Any] = {
        ":now": iso(change.entry.at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
    }
    for c in change.changes:
        sets.append(f"parts[{c.index}].#status = :part{c.index}")
        values[f":part{c.index}"] = c.to.value
    for index, line in change.new_lines.items():
        sets.append(f"parts[{index}] = :line{index}")
        values[f":line{index}"] = line.model_dump(mode="json")
    sets, values = _visit_sets(change.visit, change.flags, change.dispatch_reason, sets, values)
    update: dict[str, Any] = {
        "TableName": table,
        "Key": to_item(ticket_key(ticket.ticket_id)),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "version = :version",
        "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
    }
    if change.changes:
        update["ExpressionAttributeNames"] = {"#status": "status"}
    items = [
        TxItem({"Update": update}, Failure.STALE),
        conditional_put(table, timeline_item(ticket.ticket_id, change.entry)),
    ]
    for part_change in change.changes:
        items += line_change_items(inventory_table, part_change, change.entry.at)
    backorders: dict[tuple[str, str, int], int] = {}  # backorders the new holds settle
    for index, line in change.new_lines.items():
        items.append(reservation_put(inventory_table, ticket.ticket_id, index, line))
        old = change.replaced_lines.get(index)
        if old is not None and old.status is LineStatus.BACKORDERED and old.warehouse:
            key = (old.sku, old.warehouse, old.shard)
            backorders[key] = backorders.get(key, 0) - line.qty
    for delta in change.new_deltas:  # one operation per item: a count on a held shard joins it
        settled = backorders.pop((delta.sku, delta.warehouse, delta.shard), 0)
        items.append(stock_update(inventory_table, delta, settled))
    for (sku, warehouse, shard), count in backorders.items():
        items.append(backorder_update(inventory_table, sku, warehouse, shard, count))
    if change.visit is not None:
        items.append(visit_put(table, change.visit))
    return items


CLASSIFIED_FIELDS = (
    "fault_code",
    "category",
    "title_en",
    "title_zh",
    "unclassified",
    "severity",
    "priority",
    "sla_response_due",
    "sla_resolution_due",
    "routine",
    "remote_fixable",
    "auto_diagnose",
    "suggested_parts",
    "parts",
    "flags",
    "catalog_version",
    "updated_at",
    "version",
)


def classification_items(
    table: str, plan: ClassificationPlan, inventory_table: str | None = None
) -> list[TxItem]:
    """The ticket's classified fields and its SLA escalation schedule (guarded by its version
    and an active status), the open-fault lock moved from the old code to the new one (the
    new one only if free), the timeline and the part holds with their stock updates."""
    before, after = plan.ticket, plan.classified
    data = after.model_dump(mode="json")
    names = {f"#{n}": n for n in CLASSIFIED_FIELDS} | {"#st": "status"}
    values: dict[str, Any] = {f":{n}": data[n] for n in CLASSIFIED_FIELDS}
    states = sorted(s.value for s in ACTIVE_STATES)
    values |= {":expected": before.version} | {f":active{i}": s for i, s in enumerate(states)}
    active = " OR ".join(f"#st = :active{i}" for i in range(len(states)))
    sets = [f"#{n} = :{n}" for n in CLASSIFIED_FIELDS]
    escalation = ""
    if plan.escalation is None:
        escalation = " " + REMOVE_ESCALATION  # no step left under the new SLA
    else:  # the sweeper's index entry moves to the new SLA's next step, in this transaction
        attrs = tracker_attributes(plan.escalation)
        sets += [f"{n} = :{n}" for n in attrs]
        values |= {f":{n}": v for n, v in attrs.items()}
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(after.ticket_id)),
            "UpdateExpression": "SET " + ", ".join(sets) + escalation,
            "ConditionExpression": f"#version = :expected AND ({active})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
    }
    new_lock = {
        **lock_key(after.thing, after.fault_code),
        "ticket_id": after.ticket_id,
        "occurrences": after.occurrences,
        "last_seen": iso(after.last_seen),
    }
    items = [
        TxItem(update, Failure.STALE),
        _release_lock(table, before),
        conditional_put(table, new_lock, NEW, Failure.LOCK_TAKEN),
        *(
            conditional_put(table, timeline_item(after.ticket_id, e, n))
            for n, e in enumerate(plan.timeline)
        ),
    ]
    lines = plan.reservation.lines
    if lines:
        if inventory_table is None:
            raise ValueError("part holds need the inventory table")
        first = len(before.parts)
        items += [
            reservation_put(inventory_table, after.ticket_id, first + i, line)
            for i, line in enumerate(lines)
        ]
        items += [
            backorder_count(inventory_table, line, line.qty)
            for line in lines
            if line.status is LineStatus.BACKORDERED and line.warehouse
        ]
        items += [stock_update(inventory_table, delta) for delta in plan.reservation.deltas]
    return items


def classify_error(plan: ClassificationPlan) -> Callable[[Cancelled], Exception]:
    def error(cancelled: Cancelled) -> Exception:
        if cancelled.failure is Failure.LOCK_TAKEN:
            ticket = plan.classified
            return CodeAlreadyOpen(ticket.thing, ticket.fault_code, cancelled.old.get("ticket_id"))
        if cancelled.failure is Failure.OUT_OF_STOCK:
            return OutOfStock(cancelled.reason)
        return ConcurrentUpdate(cancelled.reason)

    return error


def _release_lock(table: str, ticket: Ticket) -> TxItem:
    delete = {
        "Delete": {
            "TableName": table,
            "Key": to_item(lock_key(ticket.thing, ticket.fault_code)),
            "ConditionExpression": "attribute_not_exists(pk) OR ticket_id = :tid",
            "ExpressionAttributeValues": {":tid": to_attr(ticket.ticket_id)},
        }
    }
    return TxItem(delete, Failure.LOCK_TAKEN)


def intake_error(cancelled: Cancelled) -> Exception:
    """Opening or correlating: already applied, out of stock, or the lock moved (re-read)."""
    if cancelled.failure is Failure.DUPLICATE:
        return DuplicateFault(cancelled.old.get("ticket_id"))
    if cancelled.failure is Failure.OUT_OF_STOCK:
        return OutOfStock(cancelled.reason)
    # The lock condition failed, or a concurrent transaction touched the same items.
    return LockConflict(cancelled.reason)


def change_error(cancelled: Cancelled) -> Exception:
    """A parts change: out of stock, unless the ticket or a hold moved on first."""
    if cancelled.failure is Failure.OUT_OF_STOCK:
        return OutOfStock(cancelled.reason)
    return ConcurrentUpdate(cancelled.reason)


def concurrent_update(cancelled: Cancelled) -> Exception:
    return ConcurrentUpdate(cancelled.reason)

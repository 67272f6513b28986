"""Dispatch's writes on TicketsTable and its parts reads on InventoryTable.

TicketsTable access patterns (beside the others in template.yaml):
- a dispatch decision updates the ticket's META item (`dispatch_state`, `dispatched_at`,
  optionally `status` -> scheduled and the `needs_onsite_dispatch` flag) guarded by its
  `version`, and puts one timeline entry (EVT#...), in one TransactWriteItems; waiting for a
  backorder also puts `PARTSWAIT#<sku> / TICKET#<id>` per backordered SKU;
- a backorder arriving: Query pk = PARTSWAIT#<sku>, then per ticket one transaction that sets
  `dispatch_state` awaiting_parts -> wanted (+ `parts_arrived_at`), deletes the wait item and
  puts a timeline entry.
`dispatch_state` is what the Dispatcher's stream filter reads: absent or `wanted` on a flagged
active ticket means "dispatch me".
- a VIP customer's preferred engineers: GetItem on CustomersTable (`customer_id`), projecting
  `preferred_engineers` (read only for VIP tickets);
- an engineer's first-time-fix record on a model and code: Query the sparse `by_engineer_fault`
  index (`ftf_key` = <engineer>#<model>#<code>, on VISIT# items only; projects `outcome`).
"""

from __future__ import annotations

from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.inventory import part_key
from aftercare.adapters.ticket_items import (
    conditional_put,
    fix_history_key,
    iso,
    ticket_key,
    timeline_item,
)
from aftercare.adapters.transactions import Cancelled, Failure, TxItem, transact
from aftercare.domain.ports.dispatch import DispatchMark, DispatchState
from aftercare.domain.ports.errors import ConcurrentUpdate
from aftercare.models.tickets import TicketFlag, TimelineEntry
from aftercare.models.visits import VisitOutcome

WAIT_PREFIX = "PARTSWAIT#"


def dispatch_mark_items(
    table: str, mark: DispatchMark, failure: Failure = Failure.STALE
) -> list[TxItem]:
    """The ticket update guarded by the status and version read, and its timeline entry
    (`failure`: what the guard failing means in the transaction these items join)."""
    ticket = mark.ticket
    sets = ["dispatch_state = :state", "dispatched_at = :now", "updated_at = :now"]
    sets.append("version = :next")
    values: dict[str, Any] = {
        ":state": mark.state.value,
        ":now": iso(mark.entry.at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
        ":from": ticket.status.value,
    }
    if mark.to_status is not None:
        sets.append("#status = :to")
        values[":to"] = mark.to_status.value
    if mark.flag and TicketFlag.NEEDS_ONSITE_DISPATCH not in ticket.flags:
        sets.append("flags = :flags")
        values[":flags"] = [*ticket.flags, TicketFlag.NEEDS_ONSITE_DISPATCH.value]
    update: dict[str, Any] = {
        "TableName": table,
        "Key": to_item(ticket_key(ticket.ticket_id)),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "version = :version AND #status = :from",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
    }
    waits = [
        conditional_put(table, {**wait_key(sku, ticket.ticket_id), "at": iso(mark.entry.at)})
        for sku in mark.waiting_skus
    ]
    return [
        TxItem({"Update": update}, failure),
        conditional_put(table, timeline_item(ticket.ticket_id, mark.entry)),
        *(
            conditional_put(table, timeline_item(ticket.ticket_id, note, seq))
            for seq, note in enumerate(mark.notes, start=1)
        ),
        *waits,
    ]


def wait_key(sku: str, ticket_id: str) -> dict[str, str]:
    return {"pk": f"{WAIT_PREFIX}{sku}", "sk": f"TICKET#{ticket_id}"}


def wake_items(table: str, ticket_id: str, sku: str, entry: TimelineEntry) -> list[TxItem]:
    """awaiting_parts -> wanted (the Dispatcher's filter passes it), the wait forgotten."""
    update = {
        "TableName": table,
        "Key": to_item(ticket_key(ticket_id)),
        "UpdateExpression": (
            "SET dispatch_state = :wanted, parts_arrived_at = :now, updated_at = :now "
            "ADD version :one"
        ),
        "ConditionExpression": "dispatch_state = :waiting",
        "ExpressionAttributeValues": {
            k: to_attr(v)
            for k, v in {
                ":wanted": DispatchState.WANTED.value,
                ":waiting": DispatchState.AWAITING_PARTS.value,
                ":now": iso(entry.at),
                ":one": 1,
            }.items()
        },
    }
    return [
        TxItem({"Update": update}, Failure.STALE),
        TxItem({"Delete": {"TableName": table, "Key": to_item(wait_key(sku, ticket_id))}}),
        conditional_put(table, timeline_item(ticket_id, entry)),
    ]


def _stale(cancelled: Cancelled) -> Exception:
    return ConcurrentUpdate(f"ticket changed under dispatch ({cancelled.reason})")


class DynamoDispatchMarks:
    """`DispatchMarks` on TicketsTable."""

    def __init__(self, *, tickets_table: str, ddb: Any | None = None) -> None:
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def mark_dispatch(self, mark: DispatchMark) -> None:
        transact(self.ddb, dispatch_mark_items(self.tickets_table, mark), _stale)


class DynamoCustomerPreferences:
    """`CustomerPreferences` on CustomersTable: one GetItem (key `customer_id`), projected."""

    def __init__(self, *, customers_table: str, ddb: Any | None = None) -> None:
        self.customers_table = customers_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def preferred_engineers(self, customer_id: str) -> list[str]:
        item = self.ddb.get_item(
            TableName=self.customers_table,
            Key={"customer_id": {"S": customer_id}},
            ProjectionExpression="preferred_engineers",
        ).get("Item")
        found = from_item(item).get("preferred_engineers") if item else None
        return [str(e) for e in found or []]


class DynamoWaitingTickets:
    """`WaitingTickets` on TicketsTable (the PARTSWAIT# items dispatch writes)."""

    def __init__(self, *, tickets_table: str, ddb: Any | None = None) -> None:
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def waiting_for(self, sku: str) -> list[str]:
        pages = self.ddb.get_paginator("query").paginate(
            TableName=self.tickets_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{WAIT_PREFIX}{sku}"}},
        )
        return [
            str(item["sk"]["S"]).removeprefix("TICKET#")
            for page in pages
            for item in page.get("Items", [])
        ]

    def wake(self, ticket_id: str, sku: str, entry: TimelineEntry) -> bool:
        try:
            transact(self.ddb, wake_items(self.tickets_table, ticket_id, sku, entry), _stale)
        except ConcurrentUpdate:  # no longer waiting (booked, closed): forget the wait
            self.ddb.delete_item(
                TableName=self.tickets_table, Key=to_item(wait_key(sku, ticket_id))
            )
            return False
        return True


class DynamoLeadTimes:
    """`LeadTimes` from InventoryTable's parts master data (one BatchGetItem)."""

    def __init__(self, *, inventory_table: str, ddb: Any | None = None) -> None:
        self.inventory_table = inventory_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def lead_days(self, skus: list[str]) -> dict[str, int]:
        unique = sorted(set(skus))
        if not unique:
            return {}
        answer = self.ddb.batch_get_item(
            RequestItems={self.inventory_table: {"Keys": [to_item(part_key(s)) for s in unique]}}
        )
        items = (from_item(i) for i in answer.get("Responses", {}).get(self.inventory_table, []))
        return {str(i["sku"]): int(i["lead_time_days"]) for i in items if "lead_time_days" in i}


FIX_HISTORY_INDEX = "by_engineer_fault"


def fix_history_query(table: str, engineer_id: str, model: str, fault_code: str) -> dict[str, Any]:
    """One engineer's visits on one model and fault code, outcomes only."""
    return {
        "TableName": table,
        "IndexName": FIX_HISTORY_INDEX,
        "KeyConditionExpression": "ftf_key = :key",
        "ProjectionExpression": "outcome",
        "ExpressionAttributeValues": {
            ":key": {"S": fix_history_key(engineer_id, model, fault_code)}
        },
    }


class DynamoFixHistory:
    """`FixHistory` from the VISIT# items on TicketsTable (one Query, paginated)."""

    def __init__(self, *, tickets_table: str, ddb: Any | None = None) -> None:
        self.tickets_table = tickets_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def visit_outcomes(self, engineer_id: str, model: str, fault_code: str) -> list[VisitOutcome]:
        request = fix_history_query(self.tickets_table, engineer_id, model, fault_code)
        pages = self.ddb.get_paginator("query").paginate(**request)
        return [
            VisitOutcome(item["outcome"]["S"])
            for page in pages
            for item in page.get("Items", [])
            if "outcome" in item
        ]

"""DynamoDB adapter for tickets and the registry.

Request dicts are built by pure functions (unit-testable shapes); `DynamoTicketStore` sends them
and translates DynamoDB's errors into the domain's (`DuplicateFault`, `LockConflict`,
`ConcurrentUpdate`, `TicketNotFound`). Key layout: see the TicketsTable comment in template.yaml.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.inventory import (
    backorder_count,
    line_change_items,
    part_key,
    reservation_put,
    routing_key,
    stock_from_item,
    stock_key,
    stock_update,
)
from aftercare.adapters.transactions import (
    Cancelled,
    Failure,
    TxItem,
    request_of,
    transact,
)
from aftercare.domain.paging import TicketPage, TicketQuery, newest_page, opened_key
from aftercare.domain.parts import LineStatus, OutOfStock, PartInfo, StockLevel
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
    OpenContext,
    OpenLock,
    PartsChange,
    TicketDetail,
    TicketNotFound,
)
from aftercare.domain.tickets import Occurrence, StatusChange, Ticket, TicketStatus, TimelineEntry

META = "META"


def ticket_key(ticket_id: str) -> dict[str, str]:
    return {"pk": f"TICKET#{ticket_id}", "sk": META}


def lock_key(thing: str, code: str) -> dict[str, str]:
    return {"pk": f"OPEN#{thing}#{code}", "sk": "LOCK"}


def last_resolution_key(thing: str, code: str) -> dict[str, str]:
    return {"pk": f"RESOLVED#{thing}#{code}", "sk": "LAST"}


def dedup_key(thing: str, fault_id: str) -> dict[str, str]:
    return {"pk": f"FAULT#{thing}#{fault_id}", "sk": "DEDUP"}


def _iso(value: datetime) -> str:
    return value.isoformat()


def ticket_item(ticket: Ticket) -> dict[str, Any]:
    data = ticket.model_dump(mode="json")
    return {
        **ticket_key(ticket.ticket_id),
        **data,
        "opened_key": opened_key(data["opened_at"], ticket.ticket_id),
    }


def newest_first_query(
    table: str,
    index: str,
    attribute: str,
    value: str,
    *,
    before: str | None,
    limit: int,
    status: str | None = None,
) -> dict[str, Any]:
    """T4/T5 paged: one index partition newest first, strictly older than `before` (a cursor's
    opened_key), at most `limit` items read; `status` filters a device's tickets."""
    condition = "#a = :v" + (" AND opened_key < :before" if before else "")
    names = {"#a": attribute}
    values: dict[str, Any] = {":v": {"S": value}}
    if before:
        values[":before"] = {"S": before}
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if status is not None:
        request["FilterExpression"] = "#s = :s"
        names["#s"] = "status"
        values[":s"] = {"S": status}
    return request


def occurrence_item(ticket_id: str, occurrence: Occurrence) -> dict[str, Any]:
    data = occurrence.model_dump(mode="json")
    return {
        "pk": f"TICKET#{ticket_id}",
        "sk": f"OCC#{data['received_at']}#{occurrence.fault_id}",
        **data,
    }


def timeline_item(ticket_id: str, entry: TimelineEntry, seq: int = 0) -> dict[str, Any]:
    """Timeline entries sort by time, then by their order within one change (`seq`)."""
    data = entry.model_dump(mode="json")
    return {
        "pk": f"TICKET#{ticket_id}",
        "sk": f"EVT#{data['at']}#{seq:02d}#{uuid.uuid4().hex[:8]}",
        **data,
    }


NEW = "attribute_not_exists(pk)"


def _put(
    table: str, item: dict[str, Any], condition: str | None = None, failure: Failure | None = None
) -> TxItem:
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
        put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return TxItem({"Put": put}, failure)


def intake_batch_get(
    devices_table: str, tickets_table: str, thing: str, code: str, fault_id: str
) -> dict[str, Any]:
    keys = [lock_key(thing, code), last_resolution_key(thing, code), dedup_key(thing, fault_id)]
    return {
        "RequestItems": {
            devices_table: {"Keys": [{"thing": {"S": thing}}], "ConsistentRead": True},
            tickets_table: {"Keys": [to_item(k) for k in keys], "ConsistentRead": True},
        }
    }


def open_ticket_items(
    table: str, plan: NewTicketPlan, inventory_table: str | None = None
) -> list[TxItem]:
    """Lock, dedup marker, ticket, its first occurrence and timeline, the repeat link and the
    part holds (with their stock updates), each with what its condition failing means."""
    ticket = plan.ticket
    lock = {
        **lock_key(ticket.thing, ticket.fault_code),
        "ticket_id": ticket.ticket_id,
        "occurrences": 1,
        "last_seen": _iso(ticket.last_seen),
    }
    marker = {
        **dedup_key(ticket.thing, plan.occurrence.fault_id),
        "ticket_id": ticket.ticket_id,
        "expires_at": plan.dedup_expires_at,
    }
    items = [
        _put(table, lock, NEW, Failure.LOCK_TAKEN),
        _put(table, marker, NEW, Failure.DUPLICATE),
        _put(table, ticket_item(ticket), NEW, Failure.LOCK_TAKEN),
        _put(table, occurrence_item(ticket.ticket_id, plan.occurrence)),
        *(_put(table, timeline_item(ticket.ticket_id, e, n)) for n, e in enumerate(plan.timeline)),
    ]
    if plan.repeat_entry is not None and ticket.repeat_of:
        items += _link_repeat(table, ticket, plan.repeat_entry)
    if plan.reservation.lines:
        if inventory_table is None:
            raise ValueError("part holds need the inventory table")
        items += _reservation_items(inventory_table, ticket.ticket_id, plan)
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
    return [TxItem(update), _put(table, timeline_item(earlier, entry))]


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
                ":last": to_attr(_iso(plan.last_seen)),
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
    return [
        TxItem(lock_update, Failure.LOCK_TAKEN),
        _put(table, marker, NEW, Failure.DUPLICATE),
        _ticket_occurrence_update(table, plan, count),
        _put(table, occurrence_item(plan.ticket_id, plan.occurrence)),
    ]


def _ticket_occurrence_update(table: str, plan: CorrelationPlan, count: int) -> TxItem:
    sets = ["occurrences = :next", "last_seen = :last", "updated_at = :now"]
    values: dict[str, Any] = {
        ":next": count,
        ":last": _iso(plan.last_seen),
        ":now": _iso(plan.updated_at),
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


def status_change_transaction(
    table: str, change: StatusChange, inventory_table: str | None = None
) -> dict[str, Any]:
    return request_of(status_change_items(table, change, inventory_table))


def status_change_items(
    table: str, change: StatusChange, inventory_table: str | None = None
) -> list[TxItem]:
    ticket = change.ticket
    sets = ["#status = :to", "updated_at = :now", "version = :next"]
    sets += [f"parts[{c.index}].#status = :part{c.index}" for c in change.part_changes]
    values: dict[str, Any] = {
        ":to": change.target.value,
        ":from": ticket.status.value,
        ":now": _iso(change.entry.at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
    }
    if change.records_resolution:
        sets += ["resolved_at = :now", "resolution = :resolution"]
        values[":resolution"] = change.resolution.value if change.resolution else None
    values |= {f":part{c.index}": c.to.value for c in change.part_changes}
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(ticket.ticket_id)),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "#status = :from AND version = :version",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
    }
    items = [
        TxItem(update, Failure.STALE),
        _put(table, timeline_item(ticket.ticket_id, change.entry)),
    ]
    if change.releases_lock:
        items.append(_release_lock(table, ticket))
    if change.records_resolution:
        last = {
            **last_resolution_key(ticket.thing, ticket.fault_code),
            "ticket_id": ticket.ticket_id,
            "resolved_at": _iso(change.entry.at),
        }
        items.append(_put(table, last))
    if change.part_changes and inventory_table is None:
        raise ValueError("parts lines need the inventory table")
    for part_change in change.part_changes:
        items += line_change_items(str(inventory_table), part_change, change.entry.at)
    return items


def parts_change_items(table: str, inventory_table: str, change: PartsChange) -> list[TxItem]:
    """Lines moving (expiry, manual release) or newly held, with the ticket's version guard."""
    ticket = change.ticket
    sets = ["updated_at = :now", "version = :next"]
    values: dict[str, Any] = {
        ":now": _iso(change.entry.at),
        ":next": ticket.version + 1,
        ":version": ticket.version,
    }
    for c in change.changes:
        sets.append(f"parts[{c.index}].#status = :part{c.index}")
        values[f":part{c.index}"] = c.to.value
    for index, line in change.new_lines.items():
        sets.append(f"parts[{index}] = :line{index}")
        values[f":line{index}"] = line.model_dump(mode="json")
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
        _put(table, timeline_item(ticket.ticket_id, change.entry)),
    ]
    for part_change in change.changes:
        items += line_change_items(inventory_table, part_change, change.entry.at)
    for index, line in change.new_lines.items():
        items.append(reservation_put(inventory_table, ticket.ticket_id, index, line))
        old = change.replaced_lines.get(index)
        if old is not None and old.status is LineStatus.BACKORDERED:
            items.append(backorder_count(inventory_table, old, -line.qty))
    items += [stock_update(inventory_table, delta) for delta in change.new_deltas]
    return items


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


class DynamoTicketStore:
    """TicketStore on DynamoDB: one BatchGetItem to read, one TransactWriteItems to change."""

    def __init__(
        self,
        *,
        tickets_table: str,
        devices_table: str,
        customers_table: str,
        inventory_table: str | None = None,
        ddb: Any | None = None,
    ) -> None:
        self.tickets_table = tickets_table
        self.devices_table = devices_table
        self.customers_table = customers_table
        self.inventory_table = inventory_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    # ------------------------------------------------------------------ intake
    def load_intake_context(self, thing: str, fault_code: str, fault_id: str) -> IntakeContext:
        request = intake_batch_get(
            self.devices_table, self.tickets_table, thing, fault_code, fault_id
        )
        found = self._batch_get(request)
        device = found.get((self.devices_table, thing))
        lock = found.get((self.tickets_table, lock_key(thing, fault_code)["pk"]))
        last = found.get((self.tickets_table, last_resolution_key(thing, fault_code)["pk"]))
        seen = found.get((self.tickets_table, dedup_key(thing, fault_id)["pk"]))
        return IntakeContext(
            device=DeviceRecord.model_validate(device) if device else None,
            lock=OpenLock.model_validate(lock) if lock else None,
            last_resolution=LastResolution.model_validate(last) if last else None,
            seen=seen is not None,
            seen_in_ticket=seen.get("ticket_id") if seen else None,
        )

    def _batch_get(self, request: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        """Items by (table, partition key value); every table here has a unique pk per read."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for table, item in self._batch_get_tables(request):
            pk = item.get("pk") or item.get("thing") or item.get("customer_id")
            found[(table, str(pk))] = item
        return found

    def _batch_get_raw(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        return [item for _, item in self._batch_get_tables(request)]

    def _batch_get_tables(self, request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        pending = request["RequestItems"]
        while pending:
            response = self.ddb.batch_get_item(RequestItems=pending)
            for table, items in response.get("Responses", {}).items():
                yield from ((table, from_item(raw)) for raw in items)
            pending = response.get("UnprocessedKeys") or {}

    def load_open_context(self, customer_id: str, region: str, skus: list[str]) -> OpenContext:
        if not skus or self.inventory_table is None:
            return OpenContext(customer=self.get_customer(customer_id))
        keys = [routing_key(region), *(part_key(sku) for sku in skus)]
        request = {
            self.customers_table: {"Keys": [{"customer_id": {"S": customer_id}}]},
            self.inventory_table: {"Keys": [to_item(k) for k in keys]},
        }
        found = self._batch_get({"RequestItems": request})
        customer = found.get((self.customers_table, customer_id))
        routing = found.get((self.inventory_table, routing_key(region)["pk"]), {})
        parts = {
            sku: PartInfo.model_validate(item)
            for sku in skus
            if (item := found.get((self.inventory_table, part_key(sku)["pk"])))
        }
        return OpenContext(
            customer=CustomerRecord.model_validate(customer) if customer else None,
            routing=list(routing.get("warehouses", [])),
            parts=parts,
        )

    def load_stock(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StockLevel]:
        if not keys or self.inventory_table is None:
            return {}
        request = {
            self.inventory_table: {
                "Keys": [to_item(stock_key(sku, wh)) for sku, wh in keys],
                "ConsistentRead": True,
            }
        }
        found = self._batch_get_raw({"RequestItems": request})
        levels = [stock_from_item(i) for i in found if "sku" in i and "warehouse" in i]
        return {(level.sku, level.warehouse): level for level in levels}

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        response = self.ddb.get_item(
            TableName=self.customers_table, Key={"customer_id": {"S": customer_id}}
        )
        item = response.get("Item")
        return CustomerRecord.model_validate(from_item(item)) if item else None

    def open_ticket(self, plan: NewTicketPlan) -> None:
        items = open_ticket_items(self.tickets_table, plan, self.inventory_table)
        transact(self.ddb, items, intake_error)

    def add_occurrence(self, plan: CorrelationPlan) -> None:
        transact(self.ddb, correlation_items(self.tickets_table, plan), intake_error)

    # ------------------------------------------------------------------ reads
    def get_ticket(self, ticket_id: str) -> TicketDetail:
        items = list(self._query_partition(f"TICKET#{ticket_id}"))
        meta = next((i for i in items if i["sk"] == META), None)
        if meta is None:
            raise TicketNotFound(ticket_id)
        return TicketDetail(
            ticket=Ticket.model_validate(meta),
            occurrences=[Occurrence.model_validate(i) for i in items if i["sk"].startswith("OCC#")],
            timeline=[TimelineEntry.model_validate(i) for i in items if i["sk"].startswith("EVT#")],
        )

    def _query_partition(self, pk: str) -> Iterator[dict[str, Any]]:
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
        for page in pages:
            yield from (from_item(i) for i in page.get("Items", []))

    def list_tickets(self, *, status: str | None = None, thing: str | None = None) -> list[Ticket]:
        """Newest first; by status (GSI by_status), by device (GSI by_thing), or all."""
        if thing is not None:
            tickets = self._query_index("by_thing", "thing", thing)
            return [t for t in tickets if status is None or t.status == status]
        statuses = [status] if status else [s.value for s in TicketStatus]
        tickets = [t for s in statuses for t in self._query_index("by_status", "status", s)]
        return sorted(tickets, key=lambda t: (t.opened_at, t.ticket_id), reverse=True)

    def page_tickets(self, query: TicketQuery) -> TicketPage:
        """One page, newest first: per device (by_thing) when `things` is given, else per status
        (by_status); each partition read only as far as the page needs, then merged."""
        if query.things is not None:
            partitions = [("by_thing", "thing", t, query.status) for t in query.things]
        else:
            statuses = [query.status] if query.status else [s.value for s in TicketStatus]
            partitions = [("by_status", "status", s, None) for s in statuses]
        candidates = [
            pair
            for index, attribute, value, status in partitions
            for pair in self._newest(
                newest_first_query(
                    self.tickets_table,
                    index,
                    attribute,
                    value,
                    before=query.after,
                    limit=query.limit + 1,
                    status=status,
                ),
                want=query.limit + 1,
            )
        ]
        return newest_page(candidates, query.limit)

    def _newest(self, request: dict[str, Any], *, want: int) -> list[tuple[str, Ticket]]:
        """Up to `want` items of one partition, following LastEvaluatedKey only while short
        (a filter or the 1 MB page limit can return fewer than `Limit`)."""
        found: list[tuple[str, Ticket]] = []
        while len(found) < want:
            response = self.ddb.query(**request)
            for raw in response.get("Items", []):
                item = from_item(raw)
                found.append((str(item["opened_key"]), Ticket.model_validate(item)))
            if "LastEvaluatedKey" not in response:
                break
            request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}
        return found[:want]

    def _query_index(self, index: str, attribute: str, value: str) -> list[Ticket]:
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            IndexName=index,
            KeyConditionExpression="#a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
            ScanIndexForward=False,
        )
        return [
            Ticket.model_validate(from_item(i)) for page in pages for i in page.get("Items", [])
        ]

    # ------------------------------------------------------------------ changes
    def apply_status_change(self, change: StatusChange) -> None:
        items = status_change_items(self.tickets_table, change, self.inventory_table)
        transact(self.ddb, items, concurrent_update)

    def apply_parts_change(self, change: PartsChange) -> None:
        if self.inventory_table is None:
            raise ValueError("parts changes need the inventory table")
        items = parts_change_items(self.tickets_table, self.inventory_table, change)
        transact(self.ddb, items, change_error)

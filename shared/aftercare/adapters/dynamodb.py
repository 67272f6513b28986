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

from botocore.exceptions import ClientError

from aftercare.adapters.aws import client, from_item, to_attr, to_item
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
        "opened_key": f"{data['opened_at']}#{ticket.ticket_id}",
    }


def occurrence_item(ticket_id: str, occurrence: Occurrence) -> dict[str, Any]:
    data = occurrence.model_dump(mode="json")
    return {
        "pk": f"TICKET#{ticket_id}",
        "sk": f"OCC#{data['received_at']}#{occurrence.fault_id}",
        **data,
    }


def timeline_item(ticket_id: str, entry: TimelineEntry) -> dict[str, Any]:
    data = entry.model_dump(mode="json")
    return {
        "pk": f"TICKET#{ticket_id}",
        "sk": f"EVT#{data['at']}#{uuid.uuid4().hex[:8]}",
        **data,
    }


def _put(table: str, item: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
        put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Put": put}


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


def open_ticket_transaction(table: str, plan: NewTicketPlan) -> dict[str, Any]:
    """Lock, dedup marker and ticket first: their conditions' indexes are fixed (0, 1, 2)."""
    ticket = plan.ticket
    new = "attribute_not_exists(pk)"
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
        _put(table, lock, new),
        _put(table, marker, new),
        _put(table, ticket_item(ticket), new),
        _put(table, occurrence_item(ticket.ticket_id, plan.occurrence)),
        *(_put(table, timeline_item(ticket.ticket_id, e)) for e in plan.timeline),
    ]
    if plan.repeat_entry is not None and ticket.repeat_of:
        items += _link_repeat(table, ticket, plan.repeat_entry)
    return {"TransactItems": items}


def _link_repeat(table: str, ticket: Ticket, entry: TimelineEntry) -> list[dict[str, Any]]:
    earlier = str(ticket.repeat_of)
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(earlier)),
            "UpdateExpression": "ADD repeated_by :new",
            "ExpressionAttributeValues": {":new": {"SS": [ticket.ticket_id]}},
        }
    }
    return [update, _put(table, timeline_item(earlier, entry))]


def correlation_transaction(table: str, plan: CorrelationPlan) -> dict[str, Any]:
    """Lock (guarded by its occurrence count) and dedup marker first: indexes 0 and 1."""
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
    return {
        "TransactItems": [
            lock_update,
            _put(table, marker, "attribute_not_exists(pk)"),
            _ticket_occurrence_update(table, plan, count),
            _put(table, occurrence_item(plan.ticket_id, plan.occurrence)),
        ]
    }


def _ticket_occurrence_update(table: str, plan: CorrelationPlan, count: int) -> dict[str, Any]:
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
    return {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(plan.ticket_id)),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
    }


def status_change_transaction(table: str, change: StatusChange) -> dict[str, Any]:
    ticket = change.ticket
    sets = ["#status = :to", "updated_at = :now", "version = :next"]
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
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": table,
                "Key": to_item(ticket_key(ticket.ticket_id)),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ConditionExpression": "#status = :from AND version = :version",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
            }
        },
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
    return {"TransactItems": items}


def _release_lock(table: str, ticket: Ticket) -> dict[str, Any]:
    return {
        "Delete": {
            "TableName": table,
            "Key": to_item(lock_key(ticket.thing, ticket.fault_code)),
            "ConditionExpression": "attribute_not_exists(pk) OR ticket_id = :tid",
            "ExpressionAttributeValues": {":tid": to_attr(ticket.ticket_id)},
        }
    }


def cancellation_codes(exc: ClientError) -> list[str]:
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code") or "None") for r in reasons]


def _cancelled_item(exc: ClientError, index: int) -> dict[str, Any]:
    reasons = exc.response.get("CancellationReasons") or []
    if index < len(reasons):
        return from_item(reasons[index].get("Item") or {})
    return {}


class DynamoTicketStore:
    """TicketStore on DynamoDB: one BatchGetItem to read, one TransactWriteItems to change."""

    def __init__(
        self,
        *,
        tickets_table: str,
        devices_table: str,
        customers_table: str,
        ddb: Any | None = None,
    ) -> None:
        self.tickets_table = tickets_table
        self.devices_table = devices_table
        self.customers_table = customers_table
        self._ddb = ddb

    @property
    def ddb(self) -> Any:
        if self._ddb is None:
            self._ddb = client("dynamodb")
        return self._ddb

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
        found: dict[tuple[str, str], dict[str, Any]] = {}
        pending = request["RequestItems"]
        while pending:
            response = self.ddb.batch_get_item(RequestItems=pending)
            for table, items in response.get("Responses", {}).items():
                for raw in items:
                    item = from_item(raw)
                    found[(table, str(item.get("pk") or item.get("thing")))] = item
            pending = response.get("UnprocessedKeys") or {}
        return found

    def get_customer(self, customer_id: str) -> CustomerRecord | None:
        response = self.ddb.get_item(
            TableName=self.customers_table, Key={"customer_id": {"S": customer_id}}
        )
        item = response.get("Item")
        return CustomerRecord.model_validate(from_item(item)) if item else None

    def open_ticket(self, plan: NewTicketPlan) -> None:
        try:
            self.ddb.transact_write_items(**open_ticket_transaction(self.tickets_table, plan))
        except ClientError as exc:
            self._raise_intake_conflict(exc)

    def add_occurrence(self, plan: CorrelationPlan) -> None:
        try:
            self.ddb.transact_write_items(**correlation_transaction(self.tickets_table, plan))
        except ClientError as exc:
            self._raise_intake_conflict(exc)

    @staticmethod
    def _raise_intake_conflict(exc: ClientError) -> None:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise exc
        codes = cancellation_codes(exc)
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            raise DuplicateFault(_cancelled_item(exc, 1).get("ticket_id")) from exc
        # Lock condition failed, or a concurrent transaction touched the same items.
        raise LockConflict(", ".join(codes)) from exc

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
        try:
            self.ddb.transact_write_items(**status_change_transaction(self.tickets_table, change))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise ConcurrentUpdate(", ".join(cancellation_codes(exc))) from exc
            raise

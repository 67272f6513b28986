"""Diagnostics on DynamoDB and the IoT data plane.

Items (TicketsTable, beside the ticket; see its comment in template.yaml):

    TICKET#<ticket_id> / DIAG#<request_id>   one request and its result; while pending it also
                                             carries diag_state=pending + diag_deadline (epoch s),
                                             the sparse GSI by_diag_deadline the sweeper reads

Recording a request is one TransactWriteItems: the DIAG item (new), its timeline entry and a
ConditionCheck that the ticket META is still in an active status, so a request for a ticket
resolved or cancelled a moment earlier is never recorded (nor published). Cancelling one is the
DIAG item under `status = pending` plus its timeline entry.

The request id embeds the ticket id, so an answer is one BatchGetItem (ticket META + DIAG) and
one TransactWriteItems (the DIAG item under the condition `status = pending`, timeline entries,
and the ticket's status change or diagnostics patch). Request dicts are built by pure functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from aftercare.adapters.aws import LazyClient, client, from_item, new_client, to_attr, to_item
from aftercare.adapters.ticket_items import META, NEW, ticket_key, timeline_item
from aftercare.adapters.ticket_writes import concurrent_update, status_change_items
from aftercare.adapters.transactions import Failure, TxItem, cancelled, request_of, transact
from aftercare.domain.diagnostics_records import (
    CompletionPlan,
    DiagnosticContext,
    PublishFailed,
    TicketNotActive,
    TicketPatch,
    VerificationPending,
)
from aftercare.domain.ports import TicketNotFound
from aftercare.domain.tickets import ACTIVE_STATES, Ticket
from aftercare.models.diagnostics import DiagnosticRecord, DiagnosticState
from aftercare.models.payloads import DiagnosticsCancel, DiagnosticsRequest
from aftercare.models.tickets import TimelineEntry

DIAG_PREFIX = "DIAG#"
PENDING_INDEX = "by_diag_deadline"


def diag_key(ticket_id: str, request_id: str) -> dict[str, str]:
    return {"pk": f"TICKET#{ticket_id}", "sk": f"{DIAG_PREFIX}{request_id}"}


def diagnostic_item(record: DiagnosticRecord) -> dict[str, Any]:
    item = {**diag_key(record.ticket_id, record.request_id), **record.model_dump(mode="json")}
    if record.status is DiagnosticState.PENDING:
        item["diag_state"] = DiagnosticState.PENDING.value
        item["diag_deadline"] = int(record.expires_at.timestamp())
    return item


def record_from_item(item: dict[str, Any]) -> DiagnosticRecord:
    return DiagnosticRecord.model_validate(item)


def _put(table: str, item: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def _new_put(table: str, record: DiagnosticRecord) -> TxItem:
    return TxItem(_put(table, diagnostic_item(record), NEW), Failure.DUPLICATE)


def _timeline_put(table: str, ticket_id: str, entry: TimelineEntry, seq: int = 0) -> TxItem:
    return TxItem(_put(table, timeline_item(ticket_id, entry, seq)))


def _settle_put(table: str, record: DiagnosticRecord) -> TxItem:
    put = _put(table, diagnostic_item(record), "#status = :pending")
    put["Put"]["ExpressionAttributeNames"] = {"#status": "status"}
    put["Put"]["ExpressionAttributeValues"] = {":pending": to_attr(DiagnosticState.PENDING.value)}
    return TxItem(put, Failure.STALE)


def ticket_active_check(table: str, ticket_id: str) -> TxItem:
    """ConditionCheck: the ticket exists and is in an active status (no stale actions)."""
    states = sorted(s.value for s in ACTIVE_STATES)
    names = [f":active{n}" for n in range(len(states))]
    check = {
        "ConditionCheck": {
            "TableName": table,
            "Key": to_item(ticket_key(ticket_id)),
            "ConditionExpression": f"#status IN ({', '.join(names)})",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                n: to_attr(v) for n, v in zip(names, states, strict=True)
            },
        }
    }
    return TxItem(check, Failure.INACTIVE)


def create_items(table: str, record: DiagnosticRecord, entry: TimelineEntry) -> list[TxItem]:
    """The request (condition: new), its timeline entry, and the check that its ticket is
    still active (whose failure outranks the duplicate: never re-publish for a closed ticket)."""
    return [
        _new_put(table, record),
        _timeline_put(table, record.ticket_id, entry),
        ticket_active_check(table, record.ticket_id),
    ]


def attempt_update(table: str, ticket_id: str, attempt: int, at: datetime) -> TxItem:
    """The ticket's self-service attempt count moves from `attempt - 1` to `attempt`, only
    while the ticket is active (so two customers' taps, or a retry, make one attempt)."""
    states = sorted(s.value for s in ACTIVE_STATES)
    names = [f":active{n}" for n in range(len(states))]
    values = {n: to_attr(v) for n, v in zip(names, states, strict=True)}
    values |= {
        ":n": to_attr(attempt),
        ":prev": to_attr(attempt - 1),
        ":now": to_attr(at.isoformat()),
    }
    guard = "attribute_not_exists(self_service_attempts) OR self_service_attempts = :prev"
    if attempt > 1:
        guard = "self_service_attempts = :prev"
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(ticket_key(ticket_id)),
            "UpdateExpression": "SET self_service_attempts = :n, updated_at = :now",
            "ConditionExpression": f"#status IN ({', '.join(names)}) AND ({guard})",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
    }
    return TxItem(update, Failure.STALE)


def attempt_items(
    table: str, record: DiagnosticRecord, entries: list[TimelineEntry], attempt: int
) -> list[TxItem]:
    """A self-service attempt: the verification request (new), its timeline entries, and the
    ticket's attempt count (which also checks that the ticket is still active)."""
    return [
        _new_put(table, record),
        *(_timeline_put(table, record.ticket_id, e, n) for n, e in enumerate(entries)),
        attempt_update(table, record.ticket_id, attempt, record.requested_at),
    ]


def create_transaction(
    table: str, record: DiagnosticRecord, entry: TimelineEntry
) -> dict[str, Any]:
    return request_of(create_items(table, record, entry))


def cancel_items(table: str, record: DiagnosticRecord, entry: TimelineEntry) -> list[TxItem]:
    """The request as cancelled (condition: still pending) and its timeline entry."""
    return [_settle_put(table, record), _timeline_put(table, record.ticket_id, entry)]


def cancel_transaction(
    table: str, record: DiagnosticRecord, entry: TimelineEntry
) -> dict[str, Any]:
    return request_of(cancel_items(table, record, entry))


def fail_items(table: str, record: DiagnosticRecord, entry: TimelineEntry) -> list[TxItem]:
    failed = record.model_copy(update={"status": DiagnosticState.FAILED})
    return [_settle_put(table, failed), _timeline_put(table, record.ticket_id, entry)]


def patch_update(table: str, patch: TicketPatch) -> TxItem:
    """Flags and suggested parts, guarded by the ticket's status and diagnostics revision."""
    return TxItem(
        {
            "Update": {
                "TableName": table,
                "Key": to_item(ticket_key(patch.ticket_id)),
                "UpdateExpression": (
                    "SET flags = :flags, suggested_parts = :parts, diag_rev = :next, "
                    "updated_at = :now"
                ),
                "ConditionExpression": (
                    "#status = :status AND (attribute_not_exists(diag_rev) OR diag_rev = :rev)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":flags": to_attr(patch.flags),
                    ":parts": to_attr([p.model_dump() for p in patch.suggested_parts]),
                    ":next": to_attr(patch.expected_rev + 1),
                    ":now": to_attr(patch.updated_at.isoformat()),
                    ":status": to_attr(patch.expected_status.value),
                    ":rev": to_attr(patch.expected_rev),
                },
            }
        },
        Failure.STALE,
    )


def completion_items(
    table: str, plan: CompletionPlan, inventory_table: str | None = None
) -> list[TxItem]:
    """Settle the request; add its timeline entries and what the answer changes on the ticket."""
    ticket_id = plan.record.ticket_id
    items = [_settle_put(table, plan.record)]
    items += [_timeline_put(table, ticket_id, e, n) for n, e in enumerate(plan.entries)]
    if plan.status_change is not None:
        items += status_change_items(table, plan.status_change, inventory_table)
    elif plan.ticket_patch is not None:
        items.append(patch_update(table, plan.ticket_patch))
    if plan.follow_up is not None:
        items.append(_new_put(table, plan.follow_up))
    return items


def due_query(table: str, deadline: int, limit: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "IndexName": PENDING_INDEX,
        "KeyConditionExpression": "diag_state = :pending AND diag_deadline <= :deadline",
        "ExpressionAttributeValues": {
            ":pending": to_attr(DiagnosticState.PENDING.value),
            ":deadline": to_attr(deadline),
        },
        "Limit": limit,
    }


class DynamoDiagnosticsStore:
    """DiagnosticsStore on the TicketsTable (+ the InventoryTable for a remote fix's release)."""

    def __init__(
        self, *, tickets_table: str, inventory_table: str | None = None, ddb: Any | None = None
    ) -> None:
        self.tickets_table = tickets_table
        self.inventory_table = inventory_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def load_ticket(self, ticket_id: str) -> Ticket:
        item = self.ddb.get_item(
            TableName=self.tickets_table, Key=to_item(ticket_key(ticket_id)), ConsistentRead=True
        ).get("Item")
        if not item:
            raise TicketNotFound(ticket_id)
        return Ticket.model_validate(from_item(item))

    def load(self, ticket_id: str, request_id: str) -> DiagnosticContext:
        keys = [ticket_key(ticket_id), diag_key(ticket_id, request_id)]
        pending: dict[str, Any] = {
            self.tickets_table: {"Keys": [to_item(k) for k in keys], "ConsistentRead": True}
        }
        items: list[dict[str, Any]] = []
        while pending:
            response = self.ddb.batch_get_item(RequestItems=pending)
            items += [
                from_item(i) for i in response.get("Responses", {}).get(self.tickets_table, [])
            ]
            pending = response.get("UnprocessedKeys") or {}
        meta = next((i for i in items if i.get("sk") == META), None)
        diag = next((i for i in items if str(i.get("sk", "")).startswith(DIAG_PREFIX)), None)
        return DiagnosticContext(
            ticket=Ticket.model_validate(meta) if meta else None,
            record=record_from_item(diag) if diag else None,
            rev=int(meta.get("diag_rev", 0)) if meta else 0,
        )

    def create(self, record: DiagnosticRecord, entry: TimelineEntry) -> bool:
        items = create_items(self.tickets_table, record, entry)
        try:
            self.ddb.transact_write_items(**request_of(items))
        except ClientError as exc:
            outcome = cancelled(items, exc)
            if outcome is not None and outcome.failure is Failure.INACTIVE:
                status = self.load_ticket(record.ticket_id).status
                raise TicketNotActive(record.ticket_id, status) from exc
            if outcome is not None and outcome.failure is Failure.DUPLICATE:
                return False
            raise
        return True

    def create_attempt(
        self, record: DiagnosticRecord, entries: list[TimelineEntry], attempt: int
    ) -> None:
        items = attempt_items(self.tickets_table, record, entries, attempt)
        try:
            self.ddb.transact_write_items(**request_of(items))
        except ClientError as exc:
            if cancelled(items, exc) is None:
                raise
            ticket = self.load_ticket(record.ticket_id)
            if ticket.status not in ACTIVE_STATES:
                raise TicketNotActive(record.ticket_id, ticket.status) from exc
            raise VerificationPending(
                f"another self-service attempt on {record.ticket_id} was recorded first"
            ) from exc

    def cancel(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        items = cancel_items(self.tickets_table, record, entry)
        transact(self.ddb, items, concurrent_update)

    def fail(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        transact(self.ddb, fail_items(self.tickets_table, record, entry), concurrent_update)

    def complete(self, plan: CompletionPlan) -> None:
        items = completion_items(self.tickets_table, plan, self.inventory_table)
        transact(self.ddb, items, concurrent_update)

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        response = self.ddb.query(**due_query(self.tickets_table, int(now.timestamp()), limit))
        keys = [from_item(i) for i in response.get("Items", [])]
        return [(k["pk"].removeprefix("TICKET#"), k["sk"].removeprefix(DIAG_PREFIX)) for k in keys]

    def for_ticket(self, ticket_id: str) -> list[DiagnosticRecord]:
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :diag)",
            ExpressionAttributeValues={
                ":pk": to_attr(f"TICKET#{ticket_id}"),
                ":diag": to_attr(DIAG_PREFIX),
            },
        )
        records = [record_from_item(from_item(i)) for p in pages for i in p.get("Items", [])]
        return sorted(records, key=lambda r: r.requested_at)

    def all_records(self) -> list[DiagnosticRecord]:
        """Every diagnostics record (reports and the demo; a Scan)."""
        paginator = self.ddb.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.tickets_table,
            FilterExpression="begins_with(sk, :diag)",
            ExpressionAttributeValues={":diag": to_attr(DIAG_PREFIX)},
        )
        return [record_from_item(from_item(i)) for p in pages for i in p.get("Items", [])]


class DynamoDeviceDirectory:
    """The device registry as the support API reads it, plus when a device was last heard."""

    def __init__(self, *, devices_table: str, ddb: Any | None = None) -> None:
        self.devices_table = devices_table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def get(self, thing: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(TableName=self.devices_table, Key={"thing": to_attr(thing)}).get(
            "Item"
        )
        return from_item(item) if item else None

    def things_of(self, customer_id: str) -> list[str]:
        paginator = self.ddb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.devices_table,
            IndexName="by_customer",
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": to_attr(customer_id)},
        )
        return [from_item(i)["thing"] for p in pages for i in p.get("Items", [])]

    def record_seen(self, thing: str, at: datetime, via: str) -> None:
        """Best effort: a registered device's newest contact (never creates a device)."""
        try:
            self.ddb.update_item(
                TableName=self.devices_table,
                Key={"thing": to_attr(thing)},
                UpdateExpression="SET last_seen_at = :at, last_seen_via = :via",
                ConditionExpression=(
                    "attribute_exists(thing) AND "
                    "(attribute_not_exists(last_seen_at) OR last_seen_at < :at)"
                ),
                ExpressionAttributeValues={":at": to_attr(at.isoformat()), ":via": to_attr(via)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise


REQUEST_TOPIC = "cmd/aftercare/{thing}/diagnostics/req"
CANCEL_TOPIC = "cmd/aftercare/{thing}/diagnostics/cancel"


class IotDataPublisher:
    """CommandPublisher through the IoT data plane (`iot-data` Publish, QoS 1).

    `endpoint` is the data-plane URL; when empty it is looked up once with
    ``iot.describe_endpoint(endpointType="iot:Data-ATS")`` (the account's ATS endpoint).
    Locally the stack sets it to its own data-plane server, which forwards to Mosquitto."""

    def __init__(self, *, endpoint: str | None, iot_data: Any | None = None) -> None:
        self.endpoint = endpoint or None
        self._client = iot_data

    @property
    def client(self) -> Any:
        if self._client is None:
            url = self.endpoint or self._discover()
            self._client = new_client(
                "iot-data",
                endpoint_url=url,
                config=Config(
                    connect_timeout=2,
                    read_timeout=10,
                    retries={"mode": "standard", "max_attempts": 3},
                ),
            )
        return self._client

    @staticmethod
    def _discover() -> str:
        address = client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        return f"https://{address}"

    def publish(self, thing: str, request: DiagnosticsRequest) -> None:
        self._publish(REQUEST_TOPIC.format(thing=thing), thing, request.model_dump_json())

    def publish_cancel(self, thing: str, cancel: DiagnosticsCancel) -> None:
        self._publish(CANCEL_TOPIC.format(thing=thing), thing, cancel.model_dump_json())

    def _publish(self, topic: str, thing: str, payload: str) -> None:
        try:
            self.client.publish(topic=topic, qos=1, payload=payload.encode())
        except (ClientError, BotoCoreError) as exc:
            raise PublishFailed(f"cannot publish to {thing}: {exc}") from exc

"""The notification ledger and profiles on NotificationsTable: one item per (ticket, event kind),
the attempts that settle it (with each ticket's timeline), and the customers' profiles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_item
from aftercare.adapters.notification_items import (
    BATCH_GET,
    BATCH_WRITE,
    attempt_items,
    is_conditional_failure,
    notification_item,
    notification_key,
    settled_item,
    timeline_entry,
    withdraw_update,
)
from aftercare.adapters.ticket_items import timeline_item
from aftercare.domain.notifications import (
    AttemptRecord,
    Notification,
    NotificationRef,
)
from aftercare.domain.preferences import NotificationProfile


class NotificationTable:
    """The NotificationsTable (and the tables it writes beside: tickets' timelines, customers)."""

    def __init__(
        self,
        *,
        table: str,
        tickets_table: str,
        customers_table: str,
        ddb: Any | None = None,
    ) -> None:
        self.table = table
        self.tickets_table = tickets_table
        self.customers_table = customers_table
        self._ddb = ddb
        self._profiles: dict[str, NotificationProfile | None] = {}

    ddb = LazyClient("dynamodb")


class DynamoProfiles(NotificationTable):
    """ProfileSource on the customers table."""

    def prefetch_profiles(self, customer_ids: Sequence[str]) -> None:
        self._profiles = {}
        for start in range(0, len(customer_ids), BATCH_GET):
            keys = [{"customer_id": {"S": c}} for c in customer_ids[start : start + BATCH_GET]]
            pending: dict[str, Any] = {self.customers_table: {"Keys": keys}}
            while pending:
                response = self.ddb.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(self.customers_table, []):
                    profile = NotificationProfile.model_validate(from_item(raw))
                    self._profiles[profile.customer_id] = profile
                pending = response.get("UnprocessedKeys") or {}
        for customer_id in customer_ids:
            self._profiles.setdefault(customer_id, None)

    def get_profile(self, customer_id: str) -> NotificationProfile | None:
        if customer_id in self._profiles:
            return self._profiles[customer_id]
        item = self.ddb.get_item(
            TableName=self.customers_table, Key={"customer_id": {"S": customer_id}}
        ).get("Item")
        return NotificationProfile.model_validate(from_item(item)) if item else None


class DynamoLedger(NotificationTable):
    """NotificationLedger: create once, read back, and record attempts in batches."""

    def create(self, notification: Notification, lease_until: datetime) -> bool:
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=to_item(notification_item(notification, lease_until)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def withdraw(self, ref: NotificationRef, *, reason: str) -> bool:
        try:
            self.ddb.update_item(**withdraw_update(self.table, ref, reason))
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def get_many(self, refs: Sequence[NotificationRef]) -> list[Notification]:
        keys = [to_item(notification_key(r)) for r in dict.fromkeys(refs)]
        found: list[Notification] = []
        for start in range(0, len(keys), BATCH_GET):
            pending: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + BATCH_GET], "ConsistentRead": True}
            }
            while pending:
                response = self.ddb.batch_get_item(RequestItems=pending)
                found += [
                    Notification.model_validate(from_item(i))
                    for i in response.get("Responses", {}).get(self.table, [])
                ]
                pending = response.get("UnprocessedKeys") or {}
        order = {r.token(): n for n, r in enumerate(refs)}
        return sorted(found, key=lambda n: order.get(n.ref.token(), 0))

    def record(
        self, attempts: Sequence[AttemptRecord], settled: Sequence[Notification] = ()
    ) -> None:
        # One BatchWriteItem (per 25 items) for everything. The settled notifications are
        # whole-item puts without conditions: they are leased to this sender (or just created
        # by it), so nobody else writes them meanwhile.
        requests: list[tuple[str, dict[str, Any]]] = [
            (self.table, settled_item(n)) for n in settled
        ]
        for index, record in enumerate(attempts):
            requests.append((self.table, attempt_items(record, index)))
            entry = timeline_item(record.ticket_id, timeline_entry(record))
            requests.append((self.tickets_table, entry))
        for start in range(0, len(requests), BATCH_WRITE):
            chunk: dict[str, list[dict[str, Any]]] = {}
            for table, item in requests[start : start + BATCH_WRITE]:
                chunk.setdefault(table, []).append({"PutRequest": {"Item": to_item(item)}})
            pending: dict[str, Any] = chunk
            while pending:
                pending = (
                    self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                )

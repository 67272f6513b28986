"""Listings of NotificationsTable for operators (the CLI, smoke checks): attempts, surveys,
follow-ups and notifications, as stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item
from aftercare.adapters.notification_items import values_of
from aftercare.adapters.survey_store import read_csat
from aftercare.domain.surveys import Csat


class NotificationReports:
    """Read-only listings and the CSAT counters; nothing here is on a function's path."""

    def __init__(self, *, table: str, ddb: Any | None = None) -> None:
        self.table = table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def csat(self) -> Csat:
        return read_csat(self.ddb, self.table)

    def list_attempts(
        self, *, ticket_id: str | None = None, customer_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Attempts, oldest first: of one ticket (Query pk), one customer (by_customer), or all."""
        if ticket_id is not None:
            items = self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :att)",
                ExpressionAttributeValues=values_of(pk=f"TICKET#{ticket_id}", att="ATT#"),
            )
        elif customer_id is not None:
            items = self._query(
                IndexName="by_customer",
                KeyConditionExpression="customer_id = :cid",
                ExpressionAttributeValues=values_of(cid=customer_id),
            )
        else:
            items = self._scan("begins_with(sk, :prefix)", "ATT#")
        return sorted(items, key=lambda i: str(i.get("attempt_key", "")))

    def list_followups(self) -> list[dict[str, Any]]:
        """Follow-up tasks, newest first."""
        return list(
            self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=values_of(pk="FOLLOWUPS"),
                ScanIndexForward=False,
            )
        )

    def list_surveys(self) -> list[dict[str, Any]]:
        return list(self._scan("begins_with(pk, :prefix)", "SURVEY#"))

    def list_notifications(self) -> list[dict[str, Any]]:
        return list(self._scan("begins_with(sk, :prefix)", "EVENT#"))

    def _query(self, **request: Any) -> Iterator[dict[str, Any]]:
        paginator = self.ddb.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, **request):
            yield from (from_item(i) for i in page.get("Items", []))

    def _scan(self, condition: str, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.ddb.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table,
            FilterExpression=condition,
            ExpressionAttributeValues=values_of(prefix=prefix),
        )
        for page in pages:
            yield from (from_item(i) for i in page.get("Items", []))

"""Parked messages on DynamoDB: rejected or dead-lettered input, with reasons, for replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_item
from aftercare.domain.ports import ParkedMessage

PARKED_RETENTION = timedelta(days=30)


def parked_item(message: ParkedMessage) -> dict[str, Any]:
    data = message.model_dump(mode="json")
    expires = message.received_at + PARKED_RETENTION
    return {
        **data,
        "parked_key": f"{data['received_at']}#{message.message_id}",
        "envelope": json.dumps(message.envelope) if message.envelope is not None else None,
        "parked_at": datetime.now(UTC).isoformat(),
        "expires_at": int(expires.timestamp()),
    }


class DynamoParkedStore:
    """ParkedStore on the ParkedTable; idempotent per (source, received_at, message id)."""

    def __init__(self, *, table: str, ddb: Any | None = None) -> None:
        self.table = table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def park(self, message: ParkedMessage) -> None:
        self.ddb.put_item(TableName=self.table, Item=to_item(parked_item(message)))

    def list(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.ddb.get_paginator("scan").paginate(TableName=self.table):
            items.extend(from_item(i) for i in page.get("Items", []))
        for item in items:
            if isinstance(item.get("envelope"), str):
                item["envelope"] = json.loads(item["envelope"])
        return sorted(items, key=lambda i: str(i.get("received_at")), reverse=True)

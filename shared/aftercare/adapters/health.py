"""DeviceHealthTable: one compact health item per device.

Access patterns (see the table in template.yaml):
- telemetry batch: BatchGetItem of the devices' registry items and health items (one request
  per 50 devices), then one conditional PutItem per device with news;
- owner's view (`GET /me/devices`): BatchGetItem of the caller's devices' health items (one
  request per 100 devices);
- silence sweep: Query the sparse `due_checks` index (only health items with a pending check
  carry `check_shard`/`next_check_at`) per shard for `next_check_at <= now`, then the
  same BatchGetItem and a conditional PutItem marking the device offline.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_item
from aftercare.domain.health import DeviceHealth
from aftercare.domain.ports.health import DeviceView, HealthConflict

HEALTH_KIND = "HEALTH"
DUE_CHECKS_INDEX = "due_checks"
CHECK_SHARDS = 8
BATCH_GET_DEVICES = 50  # two keys each (registry + health): BatchGetItem's limit is 100
BATCH_GET_KEYS = 100


def check_shard(thing: str) -> str:
    """Spreads the sparse index's pending checks over a few partitions."""
    return f"S{int(hashlib.sha256(thing.encode()).hexdigest(), 16) % CHECK_SHARDS}"


def health_item(health: DeviceHealth) -> dict[str, Any]:
    """The item: keys, the watermark and the index attributes as attributes, the rest as one
    JSON string (one small attribute is cheaper to write than a dozen nested ones)."""
    item: dict[str, Any] = {
        "thing": health.thing,
        "kind": HEALTH_KIND,
        "last_sent_at": health.last_sent_at.isoformat(),
        "last_seen": health.last_seen.isoformat(),
        "body": health.model_dump_json(exclude_none=True),
    }
    if health.next_check_at is not None and health.offline_since is None:
        item["check_shard"] = check_shard(health.thing)
        item["next_check_at"] = health.next_check_at.isoformat()
    return item


def health_put_request(
    table: str, health: DeviceHealth, *, previous: datetime | None
) -> dict[str, Any]:
    """A put that only succeeds over the watermark it was folded from."""
    request: dict[str, Any] = {"TableName": table, "Item": to_item(health_item(health))}
    if previous is None:
        request["ConditionExpression"] = "attribute_not_exists(thing)"
    else:
        request["ConditionExpression"] = "last_sent_at = :previous"
        request["ExpressionAttributeValues"] = {":previous": {"S": previous.isoformat()}}
    return request


def read_request(devices_table: str, health_table: str, things: Sequence[str]) -> dict[str, Any]:
    return {
        "RequestItems": {
            devices_table: {
                "Keys": [{"thing": {"S": t}} for t in things],
                "ProjectionExpression": "thing, model, customer_id, #region",
                "ExpressionAttributeNames": {"#region": "region"},
            },
            health_table: {
                "Keys": [{"thing": {"S": t}, "kind": {"S": HEALTH_KIND}} for t in things],
            },
        }
    }


def healths_request(health_table: str, things: Sequence[str]) -> dict[str, Any]:
    """The health items of up to 100 devices, in one BatchGetItem."""
    return {
        health_table: {
            "Keys": [{"thing": {"S": t}, "kind": {"S": HEALTH_KIND}} for t in things],
        }
    }


def due_checks_queries(table: str, now: datetime, limit: int) -> list[dict[str, Any]]:
    """One Query per shard of the sparse index: pending checks due by `now`."""
    return [
        {
            "TableName": table,
            "IndexName": DUE_CHECKS_INDEX,
            "KeyConditionExpression": "check_shard = :shard AND next_check_at <= :now",
            "ExpressionAttributeValues": {
                ":shard": {"S": f"S{shard}"},
                ":now": {"S": now.isoformat()},
            },
            "Limit": limit,
        }
        for shard in range(CHECK_SHARDS)
    ]


def health_from_item(item: dict[str, Any]) -> DeviceHealth:
    return DeviceHealth.model_validate(json.loads(str(item["body"])))


class DynamoHealthStore:
    """`HealthStore` over DevicesTable (read) and DeviceHealthTable (read/write)."""

    ddb = LazyClient("dynamodb")

    def __init__(self, *, devices_table: str, health_table: str, ddb: Any | None = None) -> None:
        self.devices_table = devices_table
        self.health_table = health_table
        self._ddb = ddb

    def read(self, things: Sequence[str]) -> dict[str, DeviceView]:
        devices: dict[str, dict[str, Any]] = {}
        healths: dict[str, DeviceHealth] = {}
        for start in range(0, len(things), BATCH_GET_DEVICES):
            chunk = things[start : start + BATCH_GET_DEVICES]
            pending: dict[str, Any] = read_request(self.devices_table, self.health_table, chunk)[
                "RequestItems"
            ]
            while pending:
                answer = self.ddb.batch_get_item(RequestItems=pending)
                for raw in answer["Responses"].get(self.devices_table, []):
                    item = from_item(raw)
                    devices[str(item["thing"])] = item
                for raw in answer["Responses"].get(self.health_table, []):
                    health = health_from_item(from_item(raw))
                    healths[health.thing] = health
                pending = answer.get("UnprocessedKeys") or {}
        return {
            thing: DeviceView(
                thing=thing,
                model=_text(item.get("model")),
                customer_id=_text(item.get("customer_id")),
                health=healths.get(thing),
                region=_text(item.get("region")),
            )
            for thing, item in devices.items()
        }

    def due_checks(self, now: datetime, limit: int) -> list[str]:
        things: list[str] = []
        for query in due_checks_queries(self.health_table, now, limit):
            for item in self.ddb.query(**query).get("Items", []):
                things.append(str(item["thing"]["S"]))
        return things[:limit]

    def save(self, health: DeviceHealth, *, previous: datetime | None) -> None:
        request = health_put_request(self.health_table, health, previous=previous)
        try:
            self.ddb.put_item(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise HealthConflict(health.thing) from exc
            raise


class DynamoHealthReader:
    """`HealthReader` over DeviceHealthTable: one BatchGetItem per 100 devices."""

    ddb = LazyClient("dynamodb")

    def __init__(self, *, health_table: str, ddb: Any | None = None) -> None:
        self.health_table = health_table
        self._ddb = ddb

    def healths(self, things: Sequence[str]) -> dict[str, DeviceHealth]:
        found: dict[str, DeviceHealth] = {}
        for start in range(0, len(things), BATCH_GET_KEYS):
            pending = healths_request(self.health_table, things[start : start + BATCH_GET_KEYS])
            while pending:
                answer = self.ddb.batch_get_item(RequestItems=pending)
                for raw in answer["Responses"].get(self.health_table, []):
                    health = health_from_item(from_item(raw))
                    found[health.thing] = health
                pending = answer.get("UnprocessedKeys") or {}
        return found


def _text(value: Any) -> str | None:
    return None if value is None else str(value)

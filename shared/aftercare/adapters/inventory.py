"""DynamoDB shapes and reads for InventoryTable (parts, stock, routing, reservations, movements).

Key layout (access patterns are written next to InventoryTable in template.yaml):
    PART#<sku> / META                    parts master data (names, unit price, lead time, models)
    STOCK#<sku> / WH#<warehouse>         on_hand, held, available (= on_hand - held), reorder_point,
                                         backordered (open backorder demand), version
    REGION#<region> / ROUTING            warehouses serving the region, in order of preference
    RES#<reservation_id> / RES           one reservation (ticket's parts line); while held it
                                         has hold_state="held" + hold_expiry (GSI by_hold_expiry)
    MOVE#<sku>#<warehouse> / <at>#<id>   stock movements (consumption, adjustments) for forecasting
    LOWSTOCK#<sku>#<warehouse> / V#<n>   a low-stock crossing at stock version n (emitted once)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.transactions import Failure, TxItem, transact
from aftercare.domain.parts import LineChange, OutOfStock, StockDelta, StockLevel
from aftercare.domain.stock import LowStockEvent, StockAdjustment
from aftercare.models.parts import LineStatus, PartsLine


def stock_key(sku: str, warehouse: str) -> dict[str, str]:
    return {"pk": f"STOCK#{sku}", "sk": f"WH#{warehouse}"}


def part_key(sku: str) -> dict[str, str]:
    return {"pk": f"PART#{sku}", "sk": "META"}


def routing_key(region: str) -> dict[str, str]:
    return {"pk": f"REGION#{region}", "sk": "ROUTING"}


def reservation_key(reservation_id: str) -> dict[str, str]:
    return {"pk": f"RES#{reservation_id}", "sk": "RES"}


def stock_update(table: str, delta: StockDelta) -> TxItem:
    """Apply a delta only while the result keeps available >= 0 (and the item exists)."""
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(stock_key(delta.sku, delta.warehouse)),
            "UpdateExpression": "ADD on_hand :oh, held :h, available :a, version :one",
            "ConditionExpression": "attribute_exists(pk) AND available >= :need",
            "ExpressionAttributeValues": {
                ":oh": to_attr(delta.on_hand),
                ":h": to_attr(delta.held),
                ":a": to_attr(delta.available),
                ":one": to_attr(1),
                ":need": to_attr(delta.need),
            },
        }
    }
    return TxItem(update, Failure.OUT_OF_STOCK)


def backorder_count(table: str, line: PartsLine, change: int) -> TxItem:
    """Open backorder demand on the first-choice warehouse's stock item (no condition)."""
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(stock_key(line.sku, str(line.warehouse))),
            "UpdateExpression": "ADD backordered :n",
            "ExpressionAttributeValues": {":n": to_attr(change)},
        }
    }
    return TxItem(update)


def reservation_item(ticket_id: str, index: int, line: PartsLine) -> dict[str, Any]:
    data = line.model_dump(mode="json")
    item = {**reservation_key(line.reservation_id), **data, "ticket_id": ticket_id}
    item["line_index"] = index
    if line.status is LineStatus.HELD and line.hold_expires_at is not None:
        item["hold_state"] = "held"
        item["hold_expiry"] = int(line.hold_expires_at.timestamp())
    return item


def reservation_put(table: str, ticket_id: str, index: int, line: PartsLine) -> TxItem:
    """A new reservation, or a re-hold of one that is no longer open."""
    put = {
        "Put": {
            "TableName": table,
            "Item": to_item(reservation_item(ticket_id, index, line)),
            "ConditionExpression": (
                "attribute_not_exists(pk) OR (ticket_id = :tid AND #st <> :held)"
            ),
            "ExpressionAttributeNames": {"#st": "status"},
            "ExpressionAttributeValues": {
                ":tid": to_attr(ticket_id),
                ":held": to_attr(LineStatus.HELD.value),
            },
        }
    }
    return TxItem(put, Failure.STALE)


def reservation_move(table: str, change: LineChange, at: datetime) -> TxItem:
    """Move a reservation on, only from the status the ticket's line says it has."""
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(reservation_key(change.line.reservation_id)),
            "UpdateExpression": "SET #st = :to, changed_at = :at REMOVE hold_state, hold_expiry",
            "ConditionExpression": "#st = :from",
            "ExpressionAttributeNames": {"#st": "status"},
            "ExpressionAttributeValues": {
                ":to": to_attr(change.to.value),
                ":from": to_attr(change.line.status.value),
                ":at": to_attr(at.isoformat()),
            },
        }
    }
    return TxItem(update, Failure.STALE)


def movement_put(table: str, delta: StockDelta, kind: str, at: datetime, note: str) -> TxItem:
    put = {
        "Put": {
            "TableName": table,
            "Item": to_item(
                {
                    "pk": f"MOVE#{delta.sku}#{delta.warehouse}",
                    "sk": f"{at.isoformat()}#{uuid.uuid4().hex[:8]}",
                    "kind": kind,
                    "sku": delta.sku,
                    "warehouse": delta.warehouse,
                    "on_hand_change": delta.on_hand,
                    "held_change": delta.held,
                    "note": note,
                    "at": at.isoformat(),
                }
            ),
        }
    }
    return TxItem(put)


def line_change_items(table: str, change: LineChange, at: datetime) -> list[TxItem]:
    """Everything in InventoryTable that moves with one parts line."""
    items = [reservation_move(table, change, at)]
    if change.delta is not None:
        items.append(stock_update(table, change.delta))
        if change.to is LineStatus.CONSUMED:
            items.append(
                movement_put(table, change.delta, "consume", at, change.line.reservation_id)
            )
    elif change.line.status is LineStatus.BACKORDERED and change.line.warehouse:
        items.append(backorder_count(table, change.line, -change.line.qty))
    return items


def stock_from_item(item: dict[str, Any]) -> StockLevel:
    return StockLevel(
        sku=item["sku"],
        warehouse=item["warehouse"],
        on_hand=int(item.get("on_hand", 0)),
        held=int(item.get("held", 0)),
        reorder_point=int(item.get("reorder_point", 0)),
        version=int(item.get("version", 0)),
    )


class InventoryReader:
    """Reads of InventoryTable for the CLI, the hold sweeper and the stock watcher."""

    def __init__(self, *, table: str, ddb: Any | None = None) -> None:
        self.table = table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def _scan_prefix(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.ddb.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": prefix}},
        )
        for page in pages:
            yield from (from_item(i) for i in page.get("Items", []))

    def stock(self) -> list[dict[str, Any]]:
        return sorted(self._scan_prefix("STOCK#"), key=lambda i: (i["sku"], i["warehouse"]))

    def parts(self) -> dict[str, dict[str, Any]]:
        return {i["sku"]: i for i in self._scan_prefix("PART#")}

    def part(self, sku: str) -> dict[str, Any] | None:
        """One part's master data (GetItem PART#<sku>/META), None when it is not listed."""
        answer = self.ddb.get_item(TableName=self.table, Key=to_item(part_key(sku)))
        return from_item(answer["Item"]) if "Item" in answer else None

    def reservations(self) -> list[dict[str, Any]]:
        return list(self._scan_prefix("RES#"))

    def low_stock_events(self) -> list[dict[str, Any]]:
        return sorted(self._scan_prefix("LOWSTOCK#"), key=lambda i: str(i.get("at")))

    def expired_holds(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        response = self.ddb.query(
            TableName=self.table,
            IndexName="by_hold_expiry",
            KeyConditionExpression="hold_state = :h AND hold_expiry <= :now",
            ExpressionAttributeValues={":h": {"S": "held"}, ":now": to_attr(int(now.timestamp()))},
            Limit=limit,
        )
        return [from_item(i) for i in response.get("Items", [])]

    def consumed_since(self, sku: str, warehouse: str, since: datetime) -> int:
        pages = self.ddb.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk >= :since",
            ExpressionAttributeValues={
                ":pk": {"S": f"MOVE#{sku}#{warehouse}"},
                ":since": {"S": since.isoformat()},
            },
        )
        moves = (from_item(i) for page in pages for i in page.get("Items", []))
        return sum(-int(m["on_hand_change"]) for m in moves if m.get("kind") == "consume")


class DynamoInventoryWriter:
    """Stock adjustments and low-stock markers on InventoryTable (InventoryWriter port)."""

    def __init__(self, *, table: str, ddb: Any | None = None) -> None:
        self.table = table
        self._ddb = ddb

    ddb = LazyClient("dynamodb")

    def adjust(self, adjustment: StockAdjustment) -> StockLevel:
        delta = adjustment.delta
        note = f"{adjustment.actor}: {adjustment.reason}"
        items = [
            stock_update(self.table, delta),
            movement_put(self.table, delta, "adjust", adjustment.at, note),
        ]
        shortage = OutOfStock(
            f"{delta.sku} at {delta.warehouse}: no such stock item, or the change "
            f"would leave fewer available than held"
        )
        transact(self.ddb, items, lambda _: shortage)
        item = self.ddb.get_item(
            TableName=self.table, Key=to_item(stock_key(delta.sku, delta.warehouse))
        )["Item"]
        return stock_from_item(from_item(item))

    def claim_low_stock(self, event: LowStockEvent) -> bool:
        """Record a crossing once; False if this crossing was already published."""
        key = {"pk": f"LOWSTOCK#{event.sku}#{event.warehouse}", "sk": f"V#{event.version:010d}"}
        item = {**key, **event.model_dump(mode="json"), "published": False}
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(pk) OR published = :no",
                ExpressionAttributeValues={":no": {"BOOL": False}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_published(self, event: LowStockEvent) -> None:
        key = {"pk": f"LOWSTOCK#{event.sku}#{event.warehouse}", "sk": f"V#{event.version:010d}"}
        self.ddb.update_item(
            TableName=self.table,
            Key=to_item(key),
            UpdateExpression="SET published = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

"""DynamoDB shapes and reads for InventoryTable (parts, stock, routing, reservations, movements).

Key layout (access patterns are written next to InventoryTable in template.yaml):
    PART#<sku> / META                    parts master data (names, unit price, lead time, models,
                                         stock_shards: how many shard items its stock has)
    STOCK#<sku> / WH#<warehouse>         stock shard 0 of (sku, warehouse): on_hand, held,
                                         available (= on_hand - held), reorder_point, backordered
                                         (open backorder demand counted on this shard), version
    STOCK#<sku>#S<n> / WH#<warehouse>    stock shard n >= 1, the same attributes: its own
                                         partition key, so reservations spread over the shards
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
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.transactions import Failure, TxItem, transact
from aftercare.domain.parts import (
    LineChange,
    OutOfStock,
    StockDelta,
    StockLevel,
    StockShard,
    level_of,
    rebalance_deltas,
    spread_change,
)
from aftercare.models.parts import LineStatus, PartsLine

if TYPE_CHECKING:  # the stock watcher's models: intake and the API load this module without them
    from aftercare.domain.stock import LowStockEvent, StockAdjustment


def stock_key(sku: str, warehouse: str, shard: int = 0) -> dict[str, str]:
    """Shard 0 keeps the unsharded key; shard n >= 1 has a partition key of its own."""
    pk = f"STOCK#{sku}" if shard == 0 else f"STOCK#{sku}#S{shard}"
    return {"pk": pk, "sk": f"WH#{warehouse}"}


def stock_keys(keys: list[tuple[str, str]], shards: dict[str, int]) -> list[dict[str, str]]:
    """Every shard item of the (sku, warehouse) pairs, `shards[sku]` of each (1 if absent)."""
    return [stock_key(sku, wh, n) for sku, wh in keys for n in range(max(shards.get(sku, 1), 1))]


def levels_from_items(items: list[dict[str, Any]]) -> dict[tuple[str, str], StockLevel]:
    """The read path: each (sku, warehouse)'s totals summed over the shard items found."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in items:
        if "sku" in item and "warehouse" in item:
            grouped.setdefault((item["sku"], item["warehouse"]), []).append(item)
    levels = {}
    for (sku, wh), found in grouped.items():
        shards = [
            StockShard(
                shard=int(i.get("shard", 0)),
                on_hand=int(i.get("on_hand", 0)),
                held=int(i.get("held", 0)),
            )
            for i in found
        ]
        first = min(found, key=lambda i: int(i.get("shard", 0)))
        levels[(sku, wh)] = level_of(
            sku,
            wh,
            shards,
            reorder_point=int(first.get("reorder_point", 0)),
            version=sum(int(i.get("version", 0)) for i in found),
            backordered=sum(int(i.get("backordered", 0)) for i in found),
        )
    return levels


def part_key(sku: str) -> dict[str, str]:
    return {"pk": f"PART#{sku}", "sk": "META"}


def routing_key(region: str) -> dict[str, str]:
    return {"pk": f"REGION#{region}", "sk": "ROUTING"}


def reservation_key(reservation_id: str) -> dict[str, str]:
    return {"pk": f"RES#{reservation_id}", "sk": "RES"}


def stock_update(table: str, delta: StockDelta, backordered: int = 0) -> TxItem:
    """Apply a delta to its shard only while the result keeps the shard's available >= 0 (and
    the shard exists). `last_transfer` tells the stock watcher how much of the on_hand change
    moved between shards (not a delivery, not a change of the warehouse's availability).
    `backordered`: a backorder count change on the same shard item (a transaction may name an
    item once: a backordered line held on the shard that counted its backorder)."""
    count = ", backordered :b" if backordered else ""
    values: dict[str, Any] = {
        ":oh": to_attr(delta.on_hand),
        ":h": to_attr(delta.held),
        ":a": to_attr(delta.available),
        ":one": to_attr(1),
        ":t": to_attr(delta.transfer),
        ":need": to_attr(delta.need),
    }
    if backordered:
        values[":b"] = to_attr(backordered)
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(stock_key(delta.sku, delta.warehouse, delta.shard)),
            "UpdateExpression": (
                f"ADD on_hand :oh, held :h, available :a, version :one{count} "
                "SET last_transfer = :t"
            ),
            "ConditionExpression": "attribute_exists(pk) AND available >= :need",
            "ExpressionAttributeValues": values,
        }
    }
    return TxItem(update, Failure.OUT_OF_STOCK)


def backorder_count(table: str, line: PartsLine, change: int) -> TxItem:
    """Open backorder demand on the first-choice warehouse's stock shard the line names (no
    condition): a storm's backorders spread over the shards like its holds."""
    return backorder_update(table, line.sku, str(line.warehouse), line.shard, change)


def backorder_update(table: str, sku: str, warehouse: str, shard: int, change: int) -> TxItem:
    update = {
        "Update": {
            "TableName": table,
            "Key": to_item(stock_key(sku, warehouse, shard)),
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
    """One stock item (one shard) as it is stored."""
    return StockLevel(
        sku=item["sku"],
        warehouse=item["warehouse"],
        on_hand=int(item.get("on_hand", 0)),
        held=int(item.get("held", 0)),
        reorder_point=int(item.get("reorder_point", 0)),
        version=int(item.get("version", 0)),
        backordered=int(item.get("backordered", 0)),
    )


RETRIES = 3


def low_stock_key(event: LowStockEvent) -> dict[str, str]:
    """One marker per stock shard change (shard 0 keeps the unsharded key)."""
    sk = f"V#{event.version:010d}" + (f"#S{event.shard}" if event.shard else "")
    return {"pk": f"LOWSTOCK#{event.sku}#{event.warehouse}", "sk": sk}


def shard_item(
    sku: str, warehouse: str, shard: int, on_hand: int, reorder_point: int
) -> dict[str, Any]:
    """A stock shard item as seeded or added (reorder point copied on every shard)."""
    return {
        **stock_key(sku, warehouse, shard),
        "sku": sku,
        "warehouse": warehouse,
        "shard": shard,
        "on_hand": on_hand,
        "held": 0,
        "available": on_hand,
        "reorder_point": reorder_point,
        "backordered": 0,
        "version": 0,
        "last_transfer": 0,
    }


def split_quantity(on_hand: int, shards: int) -> list[int]:
    """Opening stock over `shards` shards, as even as whole units allow."""
    base, extra = divmod(on_hand, shards)
    return [base + (1 if n < extra else 0) for n in range(shards)]


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

    def stock_shards(self) -> list[dict[str, Any]]:
        """Every stock shard item as stored."""
        found = [i for i in self._scan_prefix("STOCK#") if "sku" in i and "warehouse" in i]
        return sorted(found, key=lambda i: (i["sku"], i["warehouse"], int(i.get("shard", 0))))

    def stock(self) -> list[dict[str, Any]]:
        """One row per (sku, warehouse): quantities and backorders summed over its shards."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.stock_shards():
            key = (item["sku"], item["warehouse"])
            row = rows.setdefault(
                key,
                {
                    "sku": item["sku"],
                    "warehouse": item["warehouse"],
                    "on_hand": 0,
                    "held": 0,
                    "available": 0,
                    "backordered": 0,
                    "reorder_point": int(item.get("reorder_point", 0)),
                    "shards": 0,
                },
            )
            for name in ("on_hand", "held", "available", "backordered"):
                row[name] += int(item.get(name, 0))
            row["shards"] += 1
        return [rows[k] for k in sorted(rows)]

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

    def shard_count(self, sku: str) -> int:
        answer = self.ddb.get_item(
            TableName=self.table, Key=to_item(part_key(sku)), ConsistentRead=True
        )
        return int(from_item(answer["Item"]).get("stock_shards", 1)) if "Item" in answer else 1

    def level(self, sku: str, warehouse: str) -> StockLevel:
        """The (sku, warehouse)'s shards, read consistently. Raises OutOfStock when it has no
        stock item."""
        keys = stock_keys([(sku, warehouse)], {sku: self.shard_count(sku)})
        pending: dict[str, Any] = {
            self.table: {"Keys": [to_item(k) for k in keys], "ConsistentRead": True}
        }
        found: list[dict[str, Any]] = []
        while pending:
            answer = self.ddb.batch_get_item(RequestItems=pending)
            found += [from_item(i) for i in answer.get("Responses", {}).get(self.table, [])]
            pending = answer.get("UnprocessedKeys") or {}
        level = levels_from_items(found).get((sku, warehouse))
        if level is None:
            raise OutOfStock(f"{sku} at {warehouse}: no such stock item")
        return level

    def adjust(self, adjustment: StockAdjustment) -> StockLevel:
        """Spread a counted change over the shards (`spread_change`) in one transaction with
        its movement; re-read and spread again when a reservation moved a shard meanwhile."""
        delta = adjustment.delta
        note = f"{adjustment.actor}: {adjustment.reason}"
        shortage = OutOfStock(
            f"{delta.sku} at {delta.warehouse}: no such stock item, or the change "
            f"would leave fewer available than held"
        )
        for attempt in range(RETRIES):
            level = self.level(delta.sku, delta.warehouse)
            items = [stock_update(self.table, d) for d in spread_change(level, delta.on_hand)]
            items.append(movement_put(self.table, delta, "adjust", adjustment.at, note))
            try:
                transact(self.ddb, items, lambda _: shortage)
            except OutOfStock:
                if attempt == RETRIES - 1:
                    raise
                continue
            break
        return self.level(delta.sku, delta.warehouse)

    def rebalance(self, sku: str, warehouse: str) -> StockLevel:
        """Level the shards' available units (holds stay on their shard) in one transaction;
        a reservation that took a unit meanwhile fails its condition, and the moves are
        planned again from a fresh read."""
        for attempt in range(RETRIES):
            level = self.level(sku, warehouse)
            moves = rebalance_deltas(level)
            if not moves:
                return level
            try:
                transact(
                    self.ddb,
                    [stock_update(self.table, d) for d in moves],
                    lambda _: OutOfStock(f"{sku} at {warehouse}: stock moved while rebalancing"),
                )
            except OutOfStock:
                if attempt == RETRIES - 1:
                    raise
                continue
            break
        return self.level(sku, warehouse)

    def set_shard_count(self, sku: str, count: int) -> list[StockLevel]:
        """Raise a SKU's shard count: the new, empty shard items of every warehouse it is
        stocked at and the count on its master data in one transaction, then level each
        warehouse's shards. Lowering it is refused: lines name their shard."""
        current = self.shard_count(sku)
        if count <= current:
            raise ValueError(f"{sku} has {current} stock shards; the count can only go up")
        shards = [i for i in InventoryReader(table=self.table, ddb=self.ddb).stock_shards()]
        firsts = [i for i in shards if i["sku"] == sku and int(i.get("shard", 0)) == 0]
        if not firsts:
            raise ValueError(f"{sku} is not stocked anywhere")
        count_update = {
            "Update": {
                "TableName": self.table,
                "Key": to_item(part_key(sku)),
                "UpdateExpression": "SET stock_shards = :n",
                "ConditionExpression": "attribute_exists(pk) AND "
                "(attribute_not_exists(stock_shards) OR stock_shards = :old)",
                "ExpressionAttributeValues": {":n": to_attr(count), ":old": to_attr(current)},
            }
        }
        items = [TxItem(count_update, Failure.STALE)]
        for first in firsts:
            for n in range(current, count):
                empty = shard_item(sku, first["warehouse"], n, 0, int(first["reorder_point"]))
                put = {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(empty),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                items.append(TxItem(put, Failure.STALE))
        transact(
            self.ddb, items, lambda _: ValueError(f"{sku}'s shards changed meanwhile; try again")
        )
        return [self.rebalance(sku, first["warehouse"]) for first in firsts]

    def claim_low_stock(self, event: LowStockEvent) -> bool:
        """Record a crossing once; False if this crossing was already published."""
        key = low_stock_key(event)
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
        key = low_stock_key(event)
        self.ddb.update_item(
            TableName=self.table,
            Key=to_item(key),
            UpdateExpression="SET published = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

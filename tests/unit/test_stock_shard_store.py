"""Stock shards on InventoryTable (moto, the template's table): the read path sums the shard
items, adjustments spread over them, rebalancing and a higher shard count keep the total, and
the stock watcher tells a move between shards from a delivery or a reservation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.inventory import (
    DynamoInventoryWriter,
    InventoryReader,
    stock_key,
    stock_update,
)
from aftercare.adapters.transactions import transact
from aftercare.domain.parts import OutOfStock, StockDelta
from aftercare.domain.stock import adjust_stock
from moto import mock_aws

from infra.seeding import stock_items
from tests.fakes.tables import create_template_tables

TABLE = "aftercare-inventory-test"
SKU, WH = "PSU-240-A", "WH-A"
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_template_tables(client, ("InventoryTable",))
        part = {"pk": f"PART#{SKU}", "sk": "META", "sku": SKU, "stock_shards": 4}
        client.put_item(TableName=TABLE, Item=to_item(part))
        for item in stock_items(SKU, WH, 6, 2, shards=4):
            client.put_item(TableName=TABLE, Item=to_item(item))
        yield client


def shards(ddb: Any) -> list[dict[str, Any]]:
    return InventoryReader(table=TABLE, ddb=ddb).stock_shards()


def test_seeding_splits_the_opening_quantity_over_the_shards(ddb: Any) -> None:
    # Given 6 units seeded over 4 shards
    found = shards(ddb)
    # Then each shard is its own partition key and they add up to the 6
    assert [int(i["on_hand"]) for i in found] == [2, 2, 1, 1]
    assert len({i["pk"] for i in found}) == 4
    (row,) = InventoryReader(table=TABLE, ddb=ddb).stock()
    assert (row["on_hand"], row["available"], row["held"], row["shards"]) == (6, 6, 0, 4)


def test_the_reservation_read_gets_every_shard_in_one_request(ddb: Any) -> None:
    store = DynamoTicketStore(
        tickets_table="t", devices_table="d", customers_table="c", inventory_table=TABLE, ddb=ddb
    )
    # When intake reads the stock with the part's shard count (from the master data it read)
    level = store.load_stock([(SKU, WH)], {SKU: 4})[(SKU, WH)]
    # Then it has all four shards, summed; without the count it reads the master data first
    assert [s.on_hand for s in level.shards] == [2, 2, 1, 1] and level.available == 6
    assert store.load_stock([(SKU, WH)]) == {(SKU, WH): level}


def test_a_write_off_spreads_over_the_shards_and_never_overdraws_one(ddb: Any) -> None:
    writer = DynamoInventoryWriter(table=TABLE, ddb=ddb)
    # When 5 of the 6 are written off
    level = adjust_stock(writer, SKU, WH, -5, reason="count", actor="t", now=NOW)
    # Then one is left, no shard below zero, and one movement records the 5
    assert level.available == 1 and all(s.available >= 0 for s in level.shards)
    reader = InventoryReader(table=TABLE, ddb=ddb)
    assert reader.consumed_since(SKU, WH, NOW.replace(year=2025)) == 0  # an adjustment
    moves = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"MOVE#{SKU}#{WH}"}},
    )["Items"]
    assert [int(m["on_hand_change"]["N"]) for m in moves] == [-5]
    # And writing off more than is left is refused, changing nothing
    with pytest.raises(OutOfStock):
        adjust_stock(writer, SKU, WH, -2, reason="count", actor="t", now=NOW)
    assert writer.level(SKU, WH).available == 1


def test_rebalance_moves_only_available_units_in_one_transaction(ddb: Any) -> None:
    writer = DynamoInventoryWriter(table=TABLE, ddb=ddb)
    # Given shard 0 holds 2 units for tickets and shard 3 was emptied
    hold = StockDelta(sku=SKU, warehouse=WH, held=2, shard=0)
    empty = StockDelta(sku=SKU, warehouse=WH, on_hand=-1, shard=3)
    transact(ddb, [stock_update(TABLE, hold), stock_update(TABLE, empty)], lambda c: OutOfStock())
    # When the shards are rebalanced
    level = writer.rebalance(SKU, WH)
    # Then the 3 available units are spread, the holds stay on shard 0, the total is unchanged
    assert sorted(s.available for s in level.shards) == [0, 1, 1, 1]
    assert level.shards[0].held == 2 and (level.on_hand, level.held) == (5, 2)
    # And each moved shard says how much of its change was a move (not a delivery)
    moved = [i for i in shards(ddb) if int(i.get("last_transfer", 0))]
    assert sum(int(i["last_transfer"]) for i in moved) == 0 and moved


def test_raising_the_shard_count_adds_shards_and_levels_them(ddb: Any) -> None:
    writer = DynamoInventoryWriter(table=TABLE, ddb=ddb)
    # When PSU-240-A goes from 4 to 6 shards
    (level,) = writer.set_shard_count(SKU, 6)
    # Then WH-A has six shards with the same 6 units, and the master data says 6
    assert len(level.shards) == 6 and level.on_hand == 6
    assert sorted(s.available for s in level.shards) == [1] * 6
    assert writer.shard_count(SKU) == 6
    # And lowering it is refused (lines name their shard)
    with pytest.raises(ValueError, match="only go up"):
        writer.set_shard_count(SKU, 2)


def test_a_backorder_counts_on_its_shard_and_the_stock_row_sums_them(ddb: Any) -> None:
    ddb.update_item(
        TableName=TABLE,
        Key=to_item(stock_key(SKU, WH, 2)),
        UpdateExpression="ADD backordered :n",
        ExpressionAttributeValues={":n": {"N": "3"}},
    )
    (row,) = InventoryReader(table=TABLE, ddb=ddb).stock()
    assert row["backordered"] == 3


def test_the_stock_watcher_subtracts_moves_between_shards() -> None:
    from tests.fakes.lambda_runtime import load_handler

    watcher = load_handler("stock_watcher")
    old = to_item({"on_hand": 1, "held": 0, "available": 1})
    # A donor shard giving a unit to a reservation's shard: no delivery, no fall in availability
    donor = {"on_hand": 0, "held": 0, "available": 0, "last_transfer": -1}
    assert watcher.shard_change(old, donor) == (0, 0)
    # The receiving shard of a top-up holding 2: the hold of 2 is the only real change
    topped = {"on_hand": 2, "held": 2, "available": 0, "last_transfer": 1}
    assert watcher.shard_change(old, topped) == (0, -2)
    # A delivery
    delivered = {"on_hand": 5, "held": 0, "available": 5, "last_transfer": 0}
    assert watcher.shard_change(old, delivered) == (4, 4)


def stream_record(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventID": "1",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {"OldImage": to_item(before), "NewImage": to_item(after)},
    }


def test_the_stock_watcher_sees_a_sharded_part_s_crossing_once_and_ignores_moves(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )

    from tests.fakes.lambda_runtime import load_handler

    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="parts-test")
    create_template_tables(ddb, ("TicketsTable",))
    for name, value in {
        "INVENTORY_TABLE": TABLE,
        "EVENT_BUS_NAME": "parts-test",
        "TICKETS_TABLE": "aftercare-tickets-test",
    }.items():
        monkeypatch.setenv(name, value)
    watcher = load_handler("stock_watcher", "handler_stock_watcher_shards")
    reader = InventoryReader(table=TABLE, ddb=ddb)

    def change(delta: StockDelta, *more: StockDelta) -> list[dict[str, Any]]:
        """Apply deltas in one transaction; the stream records of the shards they changed."""
        before = {int(i["shard"]): i for i in shards(ddb)}
        items = [stock_update(TABLE, d) for d in (delta, *more)]
        transact(ddb, items, lambda c: OutOfStock())
        after = {int(i["shard"]): i for i in shards(ddb)}
        return [stream_record(before[d.shard], after[d.shard]) for d in (delta, *more)]

    def handle(records: list[dict[str, Any]]) -> None:
        for raw in records:
            watcher.record_handler(DynamoDBRecord(raw))

    # Given PSU-240-A at WH-A: 6 units over 4 shards (2, 2, 1, 1), reorder point 2
    # When two holds of 2 take the warehouse from 6 to 4 (above the point), then to 2 (at it)
    handle(change(StockDelta(sku=SKU, warehouse=WH, held=2, shard=0)))
    assert reader.low_stock_events() == []
    handle(change(StockDelta(sku=SKU, warehouse=WH, held=2, shard=1)))
    # Then one low-stock event, for the warehouse's total, marked by the shard that crossed
    (event,) = reader.low_stock_events()
    assert (event["available"], event["shard"], event["published"]) == (2, 1, True)
    assert event["sk"].endswith("#S1")
    # And a move between shards (a top-up's donor and receiver) is neither a fall nor a crossing
    handle(
        change(
            StockDelta(sku=SKU, warehouse=WH, on_hand=1, shard=2, transfer=1),
            StockDelta(sku=SKU, warehouse=WH, on_hand=-1, shard=3, transfer=-1),
        )
    )
    assert len(reader.low_stock_events()) == 1

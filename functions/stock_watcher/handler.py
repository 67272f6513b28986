"""StockWatcher (InventoryTable stream): one low-stock event per reorder-point crossing; and a
delivery (on hand going up) wakes the tickets waiting in dispatch for that part."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.aws import from_item
from aftercare.adapters.dispatch_marks import DynamoWaitingTickets
from aftercare.adapters.events import EventBridgePublisher
from aftercare.adapters.inventory import DynamoInventoryWriter, InventoryReader, stock_from_item
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.dispatch_waiting import wake_waiting
from aftercare.domain.parts import ReorderPolicy
from aftercare.domain.stock import LowStockEvent, on_stock_change
from aftercare.observability import logger, metrics, tracer
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = ReportingBatchProcessor(event_type=EventType.DynamoDBStreams)
LOW_STOCK = "aftercare.parts.low_stock"


class Settings(EnvSettings):
    inventory_table: str
    event_bus_name: str
    tickets_table: str
    service_level: float = 0.95


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.reader = InventoryReader(table=settings.inventory_table)
        self.writer = DynamoInventoryWriter(table=settings.inventory_table)
        self.bus = EventBridgePublisher(bus_name=settings.event_bus_name)
        self.policy = ReorderPolicy(service_level=settings.service_level)
        self.waiting = DynamoWaitingTickets(tickets_table=settings.tickets_table)

    def publish(self, event: LowStockEvent) -> str:
        return self.bus.publish(LOW_STOCK, event.model_dump(mode="json"))


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


def shard_change(old_raw: dict[str, Any] | None, new_item: dict[str, Any]) -> tuple[int, int]:
    """(on_hand, available) change of a stock shard's record, without the units that only
    moved between shards of the same (SKU, warehouse) (`last_transfer` of the update)."""
    if not old_raw:
        return 0, 0
    old = from_item(old_raw)
    moved = int(new_item.get("last_transfer", 0))
    on_hand = int(new_item.get("on_hand", 0)) - int(old.get("on_hand", 0)) - moved
    available = int(new_item.get("available", 0)) - int(old.get("available", 0)) - moved
    return on_hand, available


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    images = record.raw_event["dynamodb"]
    old_raw, new_raw = images.get("OldImage"), images.get("NewImage")
    if not new_raw or not str(new_raw.get("pk", {}).get("S", "")).startswith("STOCK#"):
        return
    new_item = from_item(new_raw)
    d = deps()
    delivered, available_change = shard_change(old_raw, new_item)
    if delivered > 0:  # a delivery (not a rebalance between shards)
        woken = wake_waiting(new_item["sku"], d.waiting, now=datetime.now(UTC))
        if woken:
            logger.info("parts arrived: tickets back to dispatch", extra={"tickets": woken})
    if old_raw is None or available_change >= 0:
        return  # only a fall in availability crosses the reorder point
    part = d.reader.part(new_item["sku"]) or {}
    shard = int(new_item.get("shard", 0))
    if int(part.get("stock_shards", 1)) > 1:
        # the warehouse's availability is the sum of its shards: read them (consistently) and
        # take this record's change back out for the level before it
        new = d.writer.level(new_item["sku"], new_item["warehouse"])
        new = new.model_copy(update={"version": int(new_item.get("version", 0))})
        old = new.model_copy(update={"held": new.held + available_change})
    else:
        old, new = stock_from_item(from_item(old_raw)), stock_from_item(new_item)
    event = on_stock_change(
        old,
        new,
        backordered=new.backordered,
        lead_time_days=int(part.get("lead_time_days", 14)),
        history=d.reader,
        sink=d.writer,
        publish=d.publish,
        policy=d.policy,
        now=datetime.now(UTC),
        shard=shard,
    )
    if event is not None:
        metrics.add_metric(name="LowStockEvent", unit=MetricUnit.Count, value=1)
        logger.info("low stock", extra=event.model_dump(mode="json"))


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

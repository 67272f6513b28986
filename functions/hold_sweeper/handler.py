"""HoldSweeper (scheduled): returns part holds past their expiry to stock, exactly once each."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.inventory import InventoryReader
from aftercare.domain.stock import sweep_expired_holds
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext


class Settings(EnvSettings):
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str


@cache
def deps() -> tuple[InventoryReader, DynamoTicketStore]:
    settings = load_settings(Settings)  # values come from the environment
    store = DynamoTicketStore(
        tickets_table=settings.tickets_table,
        devices_table=settings.devices_table,
        customers_table=settings.customers_table,
        inventory_table=settings.inventory_table,
    )
    return InventoryReader(table=settings.inventory_table), store


@entry_point
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    holds, store = deps()
    expired = sweep_expired_holds(holds, store, datetime.now(UTC))
    metrics.add_metric(name="PartHoldsExpired", unit=MetricUnit.Count, value=expired)
    logger.info("hold sweep done", extra={"expired": expired, "scheduled_at": event.time})
    return {"expired": expired}

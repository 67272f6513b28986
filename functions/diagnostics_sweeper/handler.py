"""DiagnosticsSweeper (scheduled): requests nobody answered in time become `timed_out`, and
their tickets are flagged for on-site dispatch."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.domain.diagnostics import sweep_timeouts
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext


class Settings(EnvSettings):
    tickets_table: str
    inventory_table: str


@cache
def deps() -> DynamoDiagnosticsStore:
    settings = load_settings(Settings)  # values come from the environment
    return DynamoDiagnosticsStore(
        tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
    )


@entry_point
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    timed_out = sweep_timeouts(deps(), datetime.now(UTC))
    metrics.add_metric(name="DiagnosticsTimedOut", unit=MetricUnit.Count, value=timed_out)
    if timed_out:
        logger.info("diagnostics timed out", extra={"timed_out": timed_out})
    return {"timed_out": timed_out}

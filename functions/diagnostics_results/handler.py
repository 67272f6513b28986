"""DiagnosticsResults: device answers from the diagnostics queue onto their tickets.

Its second event source is the queue's own dead-letter queue: those records (rule errors,
answers that kept failing) are parked with their reason instead of being applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.diagnostics import (
    DynamoDeviceDirectory,
    DynamoDiagnosticsStore,
    IotDataPublisher,
)
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.diagnostics_answers import (
    ResultOutcome,
    handle_result_message,
    park_dead_letter,
)
from aftercare.domain.rules import FaultCatalog, load_catalog
from aftercare.models.diagnostics import Outcome
from aftercare.observability import logger, metrics, tracer
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = ReportingBatchProcessor(event_type=EventType.SQS)


class Settings(EnvSettings):
    tickets_table: str
    devices_table: str
    inventory_table: str
    parked_table: str
    parked_payload_bucket: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up
    diagnostics_timeout_s: int
    dead_letter_queue_arn: str


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        )
        self.devices = DynamoDeviceDirectory(devices_table=settings.devices_table)
        self.publisher = IotDataPublisher(endpoint=settings.iot_data_endpoint)
        self.parked = DynamoParkedStore(
            table=settings.parked_table, bucket=settings.parked_payload_bucket
        )
        self.catalog: FaultCatalog = load_catalog()
        self.verify_timeout = timedelta(seconds=settings.diagnostics_timeout_s)


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


# Deflection from device evidence: SelfServiceResolved / SelfServiceAttempted (the API's count).
SELF_SERVICE_METRICS = {
    Outcome.SELF_SERVICE_FIXED: "SelfServiceResolved",
    Outcome.SELF_SERVICE_FAILED: "SelfServiceNotFixed",
}


def _count(outcome: ResultOutcome) -> None:
    if outcome.reason is not None:
        logger.warning("diagnostics answer parked", extra=outcome.model_dump(mode="json"))
        with single_metric(name="DiagnosticsRejected", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="reason", value=outcome.reason.value)
        return
    with single_metric(name="DiagnosticsAnswered", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="outcome", value=str(outcome.outcome))
    deflection = SELF_SERVICE_METRICS.get(outcome.outcome) if outcome.outcome else None
    if deflection is not None:
        metrics.add_metric(name=deflection, unit=MetricUnit.Count, value=1)
    if outcome.latency_ms is not None:
        metrics.add_metric(
            name="DiagnosticsLatency", unit=MetricUnit.Milliseconds, value=outcome.latency_ms
        )
    logger.info("diagnostics answer applied", extra=outcome.model_dump(mode="json"))


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    d = deps()
    if record.event_source_arn == d.settings.dead_letter_queue_arn:
        sent = datetime.fromtimestamp(int(record.attributes.sent_timestamp) / 1000, tz=UTC)
        receives = int(record.attributes.approximate_receive_count)
        return park_dead_letter(record.body, record.message_id, receives, sent, d.parked)
    outcome = handle_result_message(
        record.body,
        record.message_id,
        store=d.store,
        publisher=d.publisher,
        parked=d.parked,
        catalog=d.catalog,
        now=datetime.now(UTC),
        verify_timeout=d.verify_timeout,
    )
    _count(outcome)
    if outcome.reason is None and outcome.thing:
        d.devices.record_seen(outcome.thing, datetime.now(UTC), "diagnostics")
    return str(outcome.outcome or outcome.reason)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

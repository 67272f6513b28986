"""DeadLetterRecorder: parks dead-lettered fault messages (rule errors, exhausted retries)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.parked import DynamoParkedStore
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.parking import record_dead_letter
from aftercare.observability import logger, tracer
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
    parked_table: str
    parked_payload_bucket: str


@cache
def deps() -> DynamoParkedStore:
    settings = load_settings(Settings)
    return DynamoParkedStore(table=settings.parked_table, bucket=settings.parked_payload_bucket)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    sent_ms = int(record.attributes.sent_timestamp)
    reason = record_dead_letter(
        record.body,
        record.message_id,
        int(record.attributes.approximate_receive_count),
        datetime.fromtimestamp(sent_ms / 1000, tz=UTC),
        deps(),
    )
    logger.warning("dead letter parked", extra={"reason": reason, "message_id": record.message_id})
    with single_metric(name="DeadLetterParked", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="reason", value=reason)
    return reason


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

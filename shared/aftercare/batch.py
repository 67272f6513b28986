"""Partial batch responses that leave a trace of every failed record.

Powertools' BatchProcessor reports a failed record to the event source (it is retried) but logs
nothing; `ReportingBatchProcessor` logs each failure with its traceback, the record's identity
and its attempt:

* SQS: ``message_id`` and ``attempt`` (``ApproximateReceiveCount``: 1 on first delivery).
* DynamoDB streams: ``event_id``, ``sequence_number`` and ``event_name``. Stream records carry no
  attempt counter (the mapping re-reads the same batch up to its MaximumRetryAttempts): repeated
  lines with one sequence number are the attempts; ``record_age_s`` says how far behind it is.
* Kinesis: ``event_id`` and ``sequence_number``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    ExceptionInfo,
    FailureResponse,
)

from aftercare.observability import logger

FAILED_RECORD = "batch record failed"


def raw_record(record: Any) -> Mapping[str, Any]:
    """The record as the event source sent it (data class, parser model or plain dict)."""
    if isinstance(record, Mapping):
        return record
    if hasattr(record, "raw_event"):
        return dict(record.raw_event)
    if hasattr(record, "model_dump"):
        return dict(record.model_dump(by_alias=True, mode="json"))
    return {}


def record_identity(event_type: EventType, raw: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies one record of `event_type` in the logs, and which attempt this is."""
    if event_type is EventType.SQS:
        receives = (raw.get("attributes") or {}).get("ApproximateReceiveCount")
        return {
            "message_id": raw.get("messageId"),
            "attempt": int(receives) if receives else None,
            "event_source_arn": raw.get("eventSourceARN"),
        }
    if event_type is EventType.DynamoDBStreams:
        return stream_record_identity(raw)
    kinesis = raw.get("kinesis") or {}
    return {"event_id": raw.get("eventID"), "sequence_number": kinesis.get("sequenceNumber")}


def stream_record_identity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream record's identity; streams have no attempt counter (see above)."""
    data = raw.get("dynamodb") or {}
    created = _epoch_seconds(data.get("ApproximateCreationDateTime"))
    return {
        "event_id": raw.get("eventID"),
        "sequence_number": data.get("SequenceNumber"),
        "event_name": raw.get("eventName"),
        "record_age_s": round(time.time() - created, 1) if created is not None else None,
    }


def _epoch_seconds(value: Any) -> float | None:
    """Epoch seconds from the Lambda event (a number) or a boto3-parsed record (a datetime)."""
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class ReportingBatchProcessor(BatchProcessor):
    """A BatchProcessor that logs every failed record (exception with traceback, identity,
    attempt) before reporting it as a batch item failure."""

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        logger.error(
            FAILED_RECORD,
            exc_info=exception[1],  # the exception carries its traceback
            extra=record_identity(self.event_type, raw_record(record)),
        )
        return super().failure_handler(record, exception)

"""What identifies one event-source record in the logs, and which attempt it is.

* SQS: ``message_id`` and ``attempt`` (``ApproximateReceiveCount``: 1 on first delivery).
* DynamoDB streams: ``event_id``, ``sequence_number`` and ``event_name``. Stream records carry no
  attempt counter (the mapping re-reads the same batch up to its MaximumRetryAttempts): repeated
  lines with one sequence number are the attempts; ``record_age_s`` says how far behind it is.
* Kinesis: ``event_id`` and ``sequence_number``.

Plain dicts in, plain dicts out: no Powertools, so a function that handles its stream batch
itself (the notifier) does not pay for the batch utility's imports.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

FAILED_RECORD = "batch record failed"


def record_identity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of an SQS, DynamoDB stream or Kinesis record, by its ``eventSource``."""
    source = raw.get("eventSource") or raw.get("EventSource")
    if source == "aws:sqs":
        receives = (raw.get("attributes") or {}).get("ApproximateReceiveCount")
        return {
            "message_id": raw.get("messageId"),
            "attempt": int(receives) if receives else None,
            "event_source_arn": raw.get("eventSourceARN"),
        }
    if source == "aws:kinesis":
        kinesis = raw.get("kinesis") or {}
        return {"event_id": raw.get("eventID"), "sequence_number": kinesis.get("sequenceNumber")}
    return stream_record_identity(raw)


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

"""Partial batch responses that leave a trace of every failed record.

Powertools' BatchProcessor reports a failed record to the event source (it is retried) but logs
nothing; `ReportingBatchProcessor` logs each failure with its traceback, the record's identity
and its attempt (`aftercare.records` says what each event source offers).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

POWERTOOLS_BATCH = "aws_lambda_powertools.utilities.batch"


def _import_powertools_batch() -> None:
    """Import Powertools' batch utilities without their parser models.

    When pydantic is already loaded, `aws_lambda_powertools.utilities.batch.types` imports every
    Powertools parser model (SQS, DynamoDB, Kinesis, Kafka, ...) only to annotate the `model=`
    parameter, which these functions never use: about half a bare boto3 import of every batch
    function's cold start. The batch package imports no pydantic itself, so it is imported once
    with pydantic out of sight."""
    if POWERTOOLS_BATCH in sys.modules:
        return
    loaded = sys.modules.pop("pydantic", None)
    try:
        __import__(POWERTOOLS_BATCH)
    finally:
        if loaded is not None:
            sys.modules["pydantic"] = loaded


_import_powertools_batch()

from aws_lambda_powertools.utilities.batch import (  # noqa: E402  (after the lean import)
    BatchProcessor,
    ExceptionInfo,
    FailureResponse,
)

from aftercare.observability import logger  # noqa: E402
from aftercare.records import FAILED_RECORD, record_identity  # noqa: E402


def raw_record(record: Any) -> Mapping[str, Any]:
    """The record as the event source sent it (data class, parser model or plain dict)."""
    if isinstance(record, Mapping):
        return record
    if hasattr(record, "raw_event"):
        return dict(record.raw_event)
    if hasattr(record, "model_dump"):
        return dict(record.model_dump(by_alias=True, mode="json"))
    return {}


class ReportingBatchProcessor(BatchProcessor):
    """A BatchProcessor that logs every failed record (exception with traceback, identity,
    attempt) before reporting it as a batch item failure."""

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        logger.error(
            FAILED_RECORD,
            exc_info=exception[1],  # the exception carries its traceback
            extra=record_identity(raw_record(record)),
        )
        return super().failure_handler(record, exception)

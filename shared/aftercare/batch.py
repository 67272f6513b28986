"""Partial batch responses that leave a trace of every failed record.

SQS and DynamoDB stream batches are processed the way Powertools' `BatchProcessor` processes
them: record by record, each as its Powertools data class (`SQSRecord`, `DynamoDBRecord`)
passed to the record handler as ``record=``; a record that raises is reported to the event
source as a batch item failure (its message id or sequence number) and retried, and when every
record of a batch fails the invocation fails (`BatchProcessingError`, the whole batch is
retried). Unlike Powertools, every failure is logged with its traceback, the record's identity
and its attempt (`aftercare.records` says what each event source offers).

It is not Powertools' batch utility because a cold start paid for all of that utility's
imports: asyncio (for its async processor), the Kinesis and Kafka event classes, and its
parser-model annotations; the functions use none of them.

    processor = ReportingBatchProcessor(EventType.SQS)
    return process_partial_response(event, record_handler, processor)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypedDict

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from aftercare.observability import logger
from aftercare.records import FAILED_RECORD, record_identity


class EventType(Enum):
    """The event sources whose batches these functions take (Powertools' names)."""

    SQS = "SQS"
    DynamoDBStreams = "DynamoDBStreams"


class ItemFailure(TypedDict):
    itemIdentifier: str


class PartialResponse(TypedDict):
    batchItemFailures: list[ItemFailure]


class BatchProcessingError(Exception):
    """Every record of the batch failed: the invocation fails, so the whole batch is retried.
    `exceptions` holds each record's exception (each one is logged as it happens)."""

    def __init__(self, message: str, exceptions: list[Exception]) -> None:
        super().__init__(message)
        self.exceptions = exceptions


Record = SQSRecord | DynamoDBRecord


def raw_record(record: Any) -> Mapping[str, Any]:
    """The record as the event source sent it (data class or plain dict)."""
    if isinstance(record, Mapping):
        return record
    if hasattr(record, "raw_event"):
        return dict(record.raw_event)
    return {}


class ReportingBatchProcessor:
    """Processes one batch's records and answers with its partial failures, logging every
    failed record (exception with traceback, identity, attempt)."""

    def __init__(self, event_type: EventType, *, raise_on_entire_batch_failure: bool = True):
        self.event_type = event_type
        self.raise_on_entire_batch_failure = raise_on_entire_batch_failure

    def record(self, raw: Mapping[str, Any]) -> Record:
        """The record as the handler sees it: the event source's Powertools data class."""
        wrap = SQSRecord if self.event_type is EventType.SQS else DynamoDBRecord
        return wrap(dict(raw))

    def identifier(self, record: Record) -> str:
        """What the event source is told to retry: the message id or the sequence number."""
        if isinstance(record, SQSRecord):
            return record.message_id
        sequence = record.dynamodb.sequence_number if record.dynamodb else None
        return str(sequence)

    def failure_handler(self, record: Record, exception: Exception) -> None:
        logger.error(
            FAILED_RECORD,
            exc_info=exception,  # the exception carries its traceback
            extra=record_identity(raw_record(record)),
        )

    def process(
        self, records: list[Mapping[str, Any]], record_handler: Callable[..., Any]
    ) -> PartialResponse:
        failures: list[ItemFailure] = []
        exceptions: list[Exception] = []
        for raw in records:
            record = self.record(raw)
            try:
                record_handler(record=record)
            except Exception as exc:  # reported as a batch item failure: the source retries it
                self.failure_handler(record, exc)
                exceptions.append(exc)
                failures.append({"itemIdentifier": self.identifier(record)})
        if records and len(failures) == len(records) and self.raise_on_entire_batch_failure:
            raise BatchProcessingError(
                f"All records failed processing. {len(exceptions)} individual errors logged "
                "separately.",
                exceptions,
            )
        return {"batchItemFailures": failures}


def process_partial_response(
    event: Mapping[str, Any],
    record_handler: Callable[..., Any],
    processor: ReportingBatchProcessor,
) -> PartialResponse:
    """The batch event's records through `record_handler`; the partial batch response."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise ValueError(
            f"Invalid event format: not a {processor.event_type.value} batch (no Records list)"
        )
    return processor.process(records, record_handler)

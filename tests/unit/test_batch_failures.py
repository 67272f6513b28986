"""Every failed batch record leaves a log line: traceback, the record's identity, its attempt."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aftercare import batch
from aftercare.batch import ReportingBatchProcessor
from aftercare.records import record_identity
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    # A service name of its own: Powertools keeps the first handler of an existing logger
    service = f"batch-test-{uuid.uuid4().hex[:8]}"
    logger = Logger(service=service, logger_handler=logging.StreamHandler(stream))
    monkeypatch.setattr(batch, "logger", logger)
    return stream


def logged(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def sqs_record(message_id: str, body: str, receives: int) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "rh",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": "1700000000000",
            "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:faults",
        "awsRegion": "us-east-1",
    }


def refuse_poison(record: Any) -> str:
    if record.body == "poison":
        raise ValueError("cannot apply this record")
    return "ok"


def test_a_failed_sqs_record_is_logged_with_traceback_id_and_attempt(log_lines):
    # Given a batch whose second message fails for the third time
    event = {"Records": [sqs_record("m-1", "fine", 1), sqs_record("m-2", "poison", 3)]}
    processor = ReportingBatchProcessor(event_type=EventType.SQS)
    # When it is processed
    response = process_partial_response(
        event=event, record_handler=refuse_poison, processor=processor
    )
    # Then only that message is reported, and one log line says which, why and which attempt
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    (line,) = logged(log_lines)
    assert line["level"] == "ERROR"
    assert line["message"] == "batch record failed"
    assert line["message_id"] == "m-2"
    assert line["attempt"] == 3
    assert line["event_source_arn"].endswith(":faults")
    assert line["exception_name"] == "ValueError"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "cannot apply this record" in line["exception"]
    assert "refuse_poison" in line["exception"]


def stream_record(sequence: str, created: float) -> dict[str, Any]:
    return {
        "eventID": f"ev-{sequence}",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "dynamodb": {
            "Keys": {"pk": {"S": "STOCK#A"}},
            "SequenceNumber": sequence,
            "ApproximateCreationDateTime": created,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_a_failed_stream_record_is_logged_with_event_id_sequence_and_age(log_lines):
    created = time.time() - 90
    event = {"Records": [stream_record("100", created), stream_record("200", created)]}
    processor = ReportingBatchProcessor(event_type=EventType.DynamoDBStreams)

    def fail_second(record: Any) -> None:
        if record.dynamodb.sequence_number == "200":
            raise KeyError("lead_time_days")

    response = process_partial_response(
        event=event, record_handler=fail_second, processor=processor
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    (line,) = logged(log_lines)
    assert (line["event_id"], line["sequence_number"], line["event_name"]) == (
        "ev-200",
        "200",
        "MODIFY",
    )
    assert 85 <= line["record_age_s"] <= 150  # streams carry no attempt counter; age instead
    assert "KeyError: 'lead_time_days'" in line["exception"]


def test_every_record_failing_still_logs_each_one(log_lines):
    event = {"Records": [sqs_record("m-1", "poison", 1), sqs_record("m-2", "poison", 2)]}
    processor = ReportingBatchProcessor(event_type=EventType.SQS)
    with pytest.raises(Exception, match="All records failed"):
        process_partial_response(event=event, record_handler=refuse_poison, processor=processor)
    assert [(line["message_id"], line["attempt"]) for line in logged(log_lines)] == [
        ("m-1", 1),
        ("m-2", 2),
    ]


def test_identity_of_a_record_parsed_by_boto3_has_a_datetime_creation_time():
    raw = stream_record("7", 0)
    raw["dynamodb"]["ApproximateCreationDateTime"] = datetime.now(UTC)
    identity = record_identity(raw)
    assert identity["sequence_number"] == "7"
    assert 0 <= identity["record_age_s"] < 5


def test_identity_of_a_kinesis_record_is_its_event_id_and_sequence_number():
    raw = {
        "eventSource": "aws:kinesis",
        "eventID": "shard-1:42",
        "kinesis": {"sequenceNumber": "42"},
    }
    assert record_identity(raw) == {"event_id": "shard-1:42", "sequence_number": "42"}

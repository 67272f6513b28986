"""The stream event source's pure parts: records, batch outcomes, on-failure documents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
    DynamoDBStreamModel,
)
from pydantic import ValidationError

from infra.local.stream_events import lambda_stream_record, on_failure_record, settle_stream_batch
from infra.local.streams import StreamSourceSpec

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"
NUMBERS = ["101", "102", "103"]


def raw_record(number: str = "101") -> dict:
    """A record as boto3's GetRecords returns it (timestamps parsed, binary as bytes)."""
    return {
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2024, 5, 1, 12, 0, 0, 700_000, tzinfo=UTC),
            "Keys": {"pk": {"S": "a"}},
            "NewImage": {"pk": {"S": "a"}, "blob": {"B": b"\x00\x01"}, "bs": {"BS": [b"x"]}},
            "OldImage": {"pk": {"S": "a"}},
            "SequenceNumber": number,
            "SizeBytes": 42,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_a_get_records_record_becomes_a_lambda_stream_record():
    # Given a GetRecords record
    # When it is turned into a Lambda event record
    record = lambda_stream_record(raw_record(), ARN, "eu-west-1")
    # Then it has Lambda's shape: region and ARN of the mapping, epoch seconds, base64 binary
    DynamoDBStreamModel.model_validate({"Records": [record]})
    assert record["eventVersion"] == "1.1"
    assert (record["awsRegion"], record["eventSourceARN"]) == ("eu-west-1", ARN)
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1714564800.0
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert record["dynamodb"]["NewImage"]["bs"] == {"BS": ["eA=="]}
    assert list(record) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]


@pytest.mark.parametrize(
    ("ok", "result", "report", "failed_at"),
    [
        (True, None, True, None),
        (True, {"batchItemFailures": []}, True, None),
        (True, {"batchItemFailures": [{"itemIdentifier": "103"}]}, False, None),  # not enabled
        (True, {"batchItemFailures": [{"itemIdentifier": "103"}]}, True, 2),
        (
            True,
            {"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": "102"}]},
            True,
            1,
        ),
        (True, {"batchItemFailures": [{"itemIdentifier": "999"}]}, True, 0),  # unknown: all
        (True, {"batchItemFailures": [{"itemIdentifier": ""}]}, True, 0),
        (True, {"batchItemFailures": "102"}, True, 0),
        (True, "ok", True, 0),
        (False, None, True, 0),
        (False, None, False, 0),
    ],
)
def test_batch_outcomes_follow_lambdas_rules(ok, result, report, failed_at):
    # Given an invocation's outcome for records 101..103
    # When settled
    settlement = settle_stream_batch(ok, result, NUMBERS, report)
    # Then processing resumes at the lowest failed record (or the batch is done)
    assert settlement.failed_at == failed_at
    assert settlement.function_error is (not ok)


def test_the_on_failure_document_is_what_lambda_sends():
    # Given a discarded batch of two records
    batch = [lambda_stream_record(raw_record(n), ARN, "us-east-1") for n in ("101", "102")]
    # When described for the on-failure destination
    document = on_failure_record(
        batch,
        shard_id="shardId-1",
        stream_arn=ARN,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        request_id="r-1",
        invoke_count=3,
        function_error=True,
    )
    # Then it has the documented shape
    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(document)
    info = document["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == ("101", "102")
    assert info["batchSize"] == 2
    assert info["approximateArrivalOfFirstRecord"] == "2024-05-01T12:00:00.000Z"
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_a_source_spec_refuses_an_invalid_filter_and_defaults_like_aws():
    base = {"event_id": "E", "stream_arn": ARN, "table_name": "t", "starting_position": "LATEST"}
    spec = StreamSourceSpec.model_validate(base)
    assert (spec.batch_size, spec.maximum_retry_attempts, spec.max_batching_window_s) == (
        100,
        -1,
        0,
    )
    with pytest.raises(ValidationError, match="eventName"):
        StreamSourceSpec.model_validate({**base, "filter_patterns": [{"eventName": "INSERT"}]})
    with pytest.raises(ValidationError):
        StreamSourceSpec.model_validate({**base, "starting_position": "AT_TIMESTAMP"})

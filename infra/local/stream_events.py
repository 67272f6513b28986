"""DynamoDB stream records as Lambda delivers them, and what Lambda makes of a batch's outcome.

Shaping turns a ``GetRecords`` record (boto3's parsed form) into the Lambda event's record;
reading a shaped record goes through Powertools' stream record data classes, the same view the
functions have of it.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    StreamRecord,
)

RECORD_EVENT_VERSION = "1.1"


_CHANGE_KEYS = (
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
)


def _json_ready(value: Any) -> Any:
    """boto3's parsed attribute values as Lambda's JSON has them (binary as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_ready(item) for item in value]
    return value


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, datetime):
        return float(math.floor(value.timestamp()))  # the stream rounds down to the second
    return value


def lambda_stream_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One record of the Lambda DynamoDB stream event, from one ``GetRecords`` record as boto3
    parses it (binary values as bytes, the creation time as a datetime)."""
    change = raw["dynamodb"]
    dynamodb = {key: _json_ready(change[key]) for key in _CHANGE_KEYS if key in change}
    if "ApproximateCreationDateTime" in dynamodb:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(
            change["ApproximateCreationDateTime"]
        )
    return _lambda_record(raw, dynamodb, stream_arn, region)


def wire_stream_record(raw: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """The same record from one ``GetRecords`` record as the response body has it
    (`infra.local.stream_wire`): its attribute values are already in the event's JSON form,
    and the creation time is epoch seconds."""
    change = raw["dynamodb"]
    dynamodb = {key: change[key] for key in _CHANGE_KEYS if key in change}
    if "ApproximateCreationDateTime" in dynamodb:
        created = float(dynamodb["ApproximateCreationDateTime"])
        dynamodb["ApproximateCreationDateTime"] = float(math.floor(created))
    return _lambda_record(raw, dynamodb, stream_arn, region)


def _lambda_record(
    raw: Mapping[str, Any], dynamodb: dict[str, Any], stream_arn: str, region: str
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": RECORD_EVENT_VERSION,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in raw:  # deletes made by TTL
        record["userIdentity"] = {
            "type": raw["userIdentity"]["Type"],
            "principalId": raw["userIdentity"]["PrincipalId"],
        }
    return record


def _change(record: Mapping[str, Any]) -> StreamRecord:
    change = DynamoDBRecord(dict(record)).dynamodb
    if change is None:
        raise KeyError("dynamodb")
    return change


def sequence_number(record: Mapping[str, Any]) -> str:
    number = _change(record).sequence_number
    if number is None:
        raise KeyError("SequenceNumber")
    return number


def created_before(record: Mapping[str, Any], moment: float) -> bool:
    """Whether the record's change happened before `moment` (epoch seconds), when it says."""
    created = _change(record).approximate_creation_date_time
    return created is not None and created < moment


@dataclass(frozen=True)
class StreamSettlement:
    """``failed_at``: index of the first record to retry (None when the batch succeeded)."""

    failed_at: int | None
    problem: str | None = None
    function_error: bool = False


def settle_stream_batch(
    ok: bool, result: object, sequence_numbers: Sequence[str], report_batch_item_failures: bool
) -> StreamSettlement:
    """Lambda's rules for a stream batch's outcome, ReportBatchItemFailures included."""
    if not ok:
        return StreamSettlement(0, "the handler raised", function_error=True)
    if not report_batch_item_failures or result is None:
        return StreamSettlement(None)
    if not isinstance(result, Mapping):
        return StreamSettlement(0, f"the response is a {type(result).__name__}, not an object")
    items = result.get("batchItemFailures")
    if items is None or items == []:
        return StreamSettlement(None)
    if not isinstance(items, list):
        return StreamSettlement(0, "batchItemFailures is not a list")
    return _first_reported_failure(items, sequence_numbers)


def _first_reported_failure(items: list[Any], sequence_numbers: Sequence[str]) -> StreamSettlement:
    positions = {number: index for index, number in enumerate(sequence_numbers)}
    failed = []
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return StreamSettlement(0, f"invalid batchItemFailures entry {item!r}")
        failed.append(positions[identifier])
    return StreamSettlement(min(failed), "the handler reported batch item failures")


def _iso(epoch: Any) -> str:
    moment = datetime.fromtimestamp(float(epoch), UTC) if epoch is not None else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def on_failure_record(
    batch: Sequence[Mapping[str, Any]],
    *,
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    request_id: str,
    invoke_count: int,
    function_error: bool,
) -> dict[str, Any]:
    """What Lambda sends to the on-failure destination for a discarded stream batch."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response_context["functionError"] = "Unhandled"
    first, last = _change(batch[0]), _change(batch[-1])
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": _iso(None),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first.sequence_number,
            "endSequenceNumber": last.sequence_number,
            "approximateArrivalOfFirstRecord": _iso(first.approximate_creation_date_time),
            "approximateArrivalOfLastRecord": _iso(last.approximate_creation_date_time),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }

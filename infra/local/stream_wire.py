"""``GetRecords`` records as DynamoDB Streams sends them, which is the Lambda event's own form.

boto3 parses a ``GetRecords`` answer value by value through the botocore shape (binary values
to bytes, the creation time to a datetime), and the stream poller then turned every value back
into the JSON form Lambda delivers (`infra.local.stream_events.lambda_stream_record`). Both walks
cover every record of the table's stream, most of which a consumer's filter then drops: they
were most of a stream consumer's CPU under load (`make profile`: botocore's parser and the
walk back, two thirds of the Dispatcher's own CPU). Here a hook takes the records from the
response body before botocore parses it (botocore parses the rest, the next iterator, as
before, and every error answer in full) and hands them over under `WIRE_RECORDS`.
"""

from __future__ import annotations

import json
from typing import Any

WIRE_RECORDS = "AftercareWireRecords"  # where the records are in the parsed response
_EVENT = "before-parse.dynamodb-streams.GetRecords"


def keep_wire_records(streams: Any) -> None:
    """Have the boto3 "dynamodbstreams" client hand ``GetRecords`` records over unparsed."""
    streams.meta.events.register(_EVENT, take_wire_records, unique_id="aftercare-wire-records")


def take_wire_records(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's `before-parse` hook: move a successful answer's records out of its body."""
    if response_dict.get("status_code", 500) >= 300:
        return  # an error: botocore parses it as usual
    body = json.loads(response_dict["body"])
    if not isinstance(body, dict) or "Records" not in body:
        return
    customized_response_dict[WIRE_RECORDS] = body.pop("Records")
    response_dict["body"] = json.dumps(body).encode()

"""GetRecords records taken from the wire (`infra.local.stream_wire`) make the same Lambda
stream records as boto3's parsed ones, and an error answer is left to botocore."""

from __future__ import annotations

import json

import boto3
from botocore.parsers import create_parser

from infra.local.stream_events import lambda_stream_record, wire_stream_record
from infra.local.stream_wire import WIRE_RECORDS, keep_wire_records, take_wire_records

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"

WIRE_BODY = {
    "NextShardIterator": "next-iterator",
    "Records": [
        {
            "eventID": "e1",
            "eventName": "MODIFY",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1714564800.789,
                "Keys": {"pk": {"S": "a"}, "sk": {"S": "META"}},
                "NewImage": {
                    "pk": {"S": "a"},
                    "n": {"N": "12.50"},
                    "blob": {"B": "AAE="},
                    "bs": {"BS": ["eA==", "eQ=="]},
                    "flags": {"L": [{"S": "x"}, {"BOOL": True}, {"NULL": True}]},
                    "nested": {"M": {"ns": {"NS": ["1", "2"]}, "ss": {"SS": ["p"]}}},
                },
                "OldImage": {"pk": {"S": "a"}, "n": {"N": "3"}},
                "SequenceNumber": "000101",
                "SizeBytes": 97,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        },
        {
            "eventID": "e2",
            "eventName": "REMOVE",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
            "dynamodb": {
                "ApproximateCreationDateTime": 1714564801.0,
                "Keys": {"pk": {"S": "b"}, "sk": {"S": "META"}},
                "OldImage": {"pk": {"S": "b"}},
                "SequenceNumber": "000102",
                "SizeBytes": 20,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        },
    ],
}


def _answer(body: dict, status: int = 200) -> dict:
    return {"status_code": status, "headers": {}, "body": json.dumps(body).encode()}


def _get_records_shape():
    client = boto3.client("dynamodbstreams", region_name="us-east-1")
    return client.meta.service_model.operation_model("GetRecords").output_shape


def _parsed(answer: dict) -> dict:
    return create_parser("json").parse(answer, _get_records_shape())


def test_wire_records_make_the_same_lambda_records_as_parsed_ones():
    # Given a GetRecords answer (binary, sets, lists, maps, a TTL delete, a fractional time)
    parsed_by_boto3 = _parsed(_answer(WIRE_BODY))
    # When the hook takes the records before botocore parses the answer
    answer, taken = _answer(WIRE_BODY), {}
    take_wire_records(response_dict=answer, customized_response_dict=taken)
    parsed_rest = _parsed(answer)
    # Then botocore parses only the rest of the answer
    assert "Records" not in parsed_rest
    assert parsed_rest["NextShardIterator"] == "next-iterator"
    # and the Lambda records made from the wire are those made from boto3's records
    from_wire = [wire_stream_record(raw, ARN, "eu-west-1") for raw in taken[WIRE_RECORDS]]
    from_boto3 = [lambda_stream_record(raw, ARN, "eu-west-1") for raw in parsed_by_boto3["Records"]]
    assert from_wire == from_boto3
    assert from_wire[0]["dynamodb"]["ApproximateCreationDateTime"] == 1714564800.0


def test_an_error_answer_is_left_to_botocore():
    error = {"__type": "ExpiredIteratorException", "message": "expired"}
    answer, taken = _answer(error, status=400), {}
    take_wire_records(response_dict=answer, customized_response_dict=taken)
    assert taken == {}
    assert json.loads(answer["body"]) == error


def test_the_hook_is_registered_on_the_clients_get_records_only():
    client = boto3.client("dynamodbstreams", region_name="us-east-1")
    keep_wire_records(client)
    keep_wire_records(client)  # registering twice keeps one hook
    emitted = client.meta.events.emit(
        "before-parse.dynamodb-streams.GetRecords",
        response_dict=_answer(WIRE_BODY),
        customized_response_dict=(taken := {}),
    )
    assert len(emitted) == 1 and len(taken[WIRE_RECORDS]) == 2
    other: dict = {}
    client.meta.events.emit(
        "before-parse.dynamodb-streams.DescribeStream",
        response_dict=_answer(WIRE_BODY),
        customized_response_dict=other,
    )
    assert other == {}

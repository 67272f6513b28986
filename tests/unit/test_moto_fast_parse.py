"""The local stack's DynamoDB request parsing (`infra.local.moto_speedups`): a data-plane body
taken from `json.loads` is exactly what moto's shape-driven parser makes of it."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.serialize import create_serializer
from moto.core.parse import JSONParser

from infra.local import moto_speedups

MODEL = boto3.client(
    "dynamodb",
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
).meta.service_model
TICKET = {
    "pk": {"S": "TICKET#T-1"},
    "sk": {"S": "META"},
    "priority": {"N": "2"},
    "weight": {"N": "-1.5e3"},
    "vip": {"BOOL": True},
    "gone": {"NULL": True},
    "tags": {"SS": ["a", "b"]},
    "counts": {"NS": ["1", "2.5"]},
    "timeline": {
        "L": [{"M": {"at": {"S": "2026-12-06T00:00:00Z"}, "what": {"S": 'opened "quoted"'}}}]
    },
    "readings": {"M": {"temp_c": {"N": "81.5"}, "text": {"S": "中文 — ünïcode"}}},
}
KEY = {"pk": {"S": "TICKET#T-1"}, "sk": {"S": "META"}}
VALUES = {":s": {"S": "open"}, ":one": {"N": "1"}, ":l": {"L": [{"S": "x"}]}}
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("GetItem", {"TableName": "t", "Key": KEY, "ConsistentRead": True}),
    (
        "PutItem",
        {
            "TableName": "t",
            "Item": TICKET,
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnConsumedCapacity": "TOTAL",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    ),
    (
        "UpdateItem",
        {
            "TableName": "t",
            "Key": KEY,
            "UpdateExpression": "SET #s = :s, tl = list_append(tl, :l) ADD n :one",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": VALUES,
            "ReturnValues": "ALL_NEW",
        },
    ),
    ("DeleteItem", {"TableName": "t", "Key": KEY, "ReturnValues": "ALL_OLD"}),
    (
        "Query",
        {
            "TableName": "t",
            "IndexName": "by_status",
            "KeyConditionExpression": "#s = :s",
            "FilterExpression": "n > :one",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": VALUES,
            "Limit": 25,
            "ScanIndexForward": False,
            "ExclusiveStartKey": KEY,
            "ProjectionExpression": "pk, sk",
            "Select": "SPECIFIC_ATTRIBUTES",
        },
    ),
    ("Scan", {"TableName": "t", "Segment": 1, "TotalSegments": 4, "Limit": 100}),
    (
        "BatchGetItem",
        {"RequestItems": {"t": {"Keys": [KEY, KEY], "ConsistentRead": False}}},
    ),
    (
        "BatchWriteItem",
        {
            "RequestItems": {
                "t": [{"PutRequest": {"Item": TICKET}}, {"DeleteRequest": {"Key": KEY}}]
            },
            "ReturnConsumedCapacity": "INDEXES",
        },
    ),
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": TICKET}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": KEY,
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": KEY,
                        "ConditionExpression": "#s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "open"}},
                    }
                },
                {"Delete": {"TableName": "t", "Key": KEY}},
            ],
            "ClientRequestToken": "token-1",
            "ReturnConsumedCapacity": "TOTAL",
        },
    ),
    ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": "t", "Key": KEY}}]}),
]


def _body(operation: str, params: dict[str, Any]) -> bytes:
    model = MODEL.operation_model(operation)
    request = create_serializer("json").serialize_to_request(params, model)
    body = request["body"]
    return body if isinstance(body, bytes) else body.encode()


def _moto_parse(operation: str, body: bytes) -> Any:
    return JSONParser(MODEL.operation_model(operation)).parse({"body": body})


class _Request:
    def __init__(self, body: bytes) -> None:
        self.data = body


class _Handler:
    def __init__(self, operation: str) -> None:
        self.headers = {"X-Amz-Target": f"DynamoDB_20120810.{operation}"}
        self.params: Any = None
        self.fallbacks = 0

    def get_endpoint_name(self, headers: dict[str, str]) -> str:
        return headers["X-Amz-Target"].split(".")[1]


def _fast_parse(operation: str, body: bytes) -> tuple[Any, int]:
    handler = _Handler(operation)

    def original(self: _Handler, request: _Request) -> None:
        self.fallbacks += 1
        self.params = _moto_parse(operation, request.data)

    moto_speedups._fast_dynamodb_parse(original)(handler, _Request(body))  # type: ignore[arg-type]
    return handler.params, handler.fallbacks


@pytest.mark.parametrize(("operation", "params"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_a_data_plane_body_parses_as_moto_parses_it(operation: str, params: dict[str, Any]) -> None:
    # Given a body exactly as a boto3 client serialises it
    body = _body(operation, params)
    # When the fast path parses it
    parsed, fallbacks = _fast_parse(operation, body)
    # Then it took no fallback and made exactly moto's parameters
    assert fallbacks == 0
    assert parsed == _moto_parse(operation, body)


def test_a_binary_value_goes_through_moto_parser() -> None:
    # Given an item with a binary attribute (moto's parser turns base64 text into bytes)
    body = _body("PutItem", {"TableName": "t", "Item": {"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}}})
    # When the fast path sees it
    parsed, fallbacks = _fast_parse("PutItem", body)
    # Then moto's parser made the parameters
    assert fallbacks == 1
    assert parsed["Item"]["b"] == {"B": b"\x00\xff"}


@pytest.mark.parametrize("operation", ["CreateTable", "DescribeTable", "UpdateTimeToLive"])
def test_control_plane_calls_keep_moto_parser(operation: str) -> None:
    # Given a control-plane call
    body = json.dumps({"TableName": "t"}).encode()
    # When the fast path sees it
    _, fallbacks = _fast_parse(operation, body)
    # Then moto's parser handles it
    assert fallbacks == 1

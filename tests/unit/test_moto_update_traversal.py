"""The local stack's walk of moto's update syntax trees (`moto_speedups._traverse`) validates
and applies UpdateItem exactly as moto's own walk does: same items, same errors."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

from infra.local import moto_speedups

KEY = {"pk": {"S": "t1"}, "sk": {"S": "META"}}
UPDATES: list[dict[str, Any]] = [
    {
        "UpdateExpression": "SET #s = :s, n = if_not_exists(n, :zero) + :one, tags = :tags",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {
            ":s": {"S": "open"},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":tags": {"SS": ["a", "b"]},
        },
    },
    {"UpdateExpression": "SET m = :m", "ExpressionAttributeValues": {":m": {"M": {}}}},
    {
        "UpdateExpression": "SET hist_log = list_append(if_not_exists(hist_log, :empty), :entry), "
        "m.in_val = :v ADD hits :one DELETE tags :a",
        "ExpressionAttributeValues": {
            ":empty": {"L": []},
            ":entry": {"L": [{"S": "x"}]},
            ":v": {"N": "7"},
            ":one": {"N": "1"},
            ":a": {"SS": ["a"]},
        },
    },
    {
        "UpdateExpression": "SET m.in_val = :v, n = n - :one REMOVE hist_log[0]",
        "ExpressionAttributeValues": {":v": {"N": "8"}, ":one": {"N": "1"}},
    },
    # refused: a key attribute, a missing path, operands of the wrong type, no such value,
    # adding a number to a string
    {"UpdateExpression": "SET pk = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}},
    {"UpdateExpression": "SET a.b.c = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}},
    {
        "UpdateExpression": "SET n = #s + :one",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    },
    {"UpdateExpression": "SET n = :missing"},
    {
        "UpdateExpression": "ADD #s :one",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    },
]


def _outcomes() -> list[Any]:
    with mock_aws():
        ddb = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ddb.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        outcomes: list[Any] = []
        for update in UPDATES:
            try:
                ddb.update_item(TableName="t", Key=KEY, **update)
                outcomes.append(ddb.get_item(TableName="t", Key=KEY)["Item"])
            except ClientError as exc:
                outcomes.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
        return outcomes


def test_updates_and_refusals_are_motos(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the speed-ups (tests/conftest.py): the fast walk is installed
    assert DepthFirstTraverser.traverse is moto_speedups._traverse
    fast = _outcomes()
    # When the same updates run with moto's own walk
    monkeypatch.setattr(DepthFirstTraverser, "traverse", moto_speedups._ORIGINAL_TRAVERSE)
    stock = _outcomes()
    # Then every item and every refusal is the same
    assert fast == stock
    assert fast[3]["m"] == {"M": {"in_val": {"N": "8"}}}
    assert sum(isinstance(outcome, tuple) for outcome in fast) == 5

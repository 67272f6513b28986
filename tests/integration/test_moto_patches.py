"""The local moto server's patched Query returns what DynamoDB would, in DynamoDB's order."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from infra.local.motoserver import SerialMotoServer


@pytest.fixture(scope="module")
def ddb() -> Iterator[object]:
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g", "gs")
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_g",
                    "KeySchema": [
                        {"AttributeName": "g", "KeyType": "HASH"},
                        {"AttributeName": "gs", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        for p in range(30):
            for s in range(10):
                item = {"pk": {"S": f"P{p:02d}"}, "sk": {"S": f"S{9 - s}"}}
                if s % 3 == 0:  # sparse index
                    item |= {"g": {"S": f"G{p % 2}"}, "gs": {"S": f"{p:02d}-{s}"}}
                client.put_item(TableName="t", Item=item)
        yield client


def test_partition_query_returns_only_that_partition_sorted(ddb) -> None:
    # When one partition is queried, forwards and backwards
    forward = ddb.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "P07"}},
    )["Items"]
    backward = ddb.query(
        TableName="t",
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": "P07"}, ":s": {"S": "S"}},
        ScanIndexForward=False,
    )["Items"]
    # Then it holds that partition's 10 items in sort-key order
    assert [i["sk"]["S"] for i in forward] == [f"S{n}" for n in range(10)]
    assert [i["sk"]["S"] for i in backward] == [f"S{n}" for n in reversed(range(10))]
    assert {i["pk"]["S"] for i in forward} == {"P07"}


def test_index_query_is_sparse_sorted_and_pages(ddb) -> None:
    # When the sparse index is queried in pages of 7
    seen, start = [], None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = ddb.query(
            TableName="t",
            IndexName="by_g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "G1"}},
            Limit=7,
            **kwargs,
        )
        seen += [i["gs"]["S"] for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    # Then every indexed item of that key comes back once, in index order
    expected = sorted(f"{p:02d}-{s}" for p in range(1, 30, 2) for s in (0, 3, 6, 9))
    assert seen == expected


def test_missing_partition_is_empty(ddb) -> None:
    response = ddb.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "nope"}},
    )
    assert response["Items"] == [] and response["Count"] == 0

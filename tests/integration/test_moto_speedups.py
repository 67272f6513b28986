"""The moto server's fast GetRecords answers exactly what moto's own serializer answers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

from infra.local import moto_speedups
from infra.local.motoserver import SerialMotoServer

TABLE = "speedups"


@pytest.fixture(scope="module")
def clients() -> Iterator[tuple[Any, Any, str]]:
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        kwargs = {
            "endpoint_url": server.url,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        ddb = boto3.client("dynamodb", **kwargs)
        streams = boto3.client("dynamodbstreams", **kwargs)
        ddb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        _write_every_kind_of_change(ddb)
        arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        yield ddb, streams, arn


def _write_every_kind_of_change(ddb: Any) -> None:
    every_type = {
        "pk": {"S": "a"},
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "n": {"N": "1.50"},
        "ns": {"NS": ["1", "2.5"]},
        "ss": {"SS": ["x", "y"]},
        "flag": {"BOOL": True},
        "nothing": {"NULL": True},
        "nested": {"M": {"l": {"L": [{"S": "é"}, {"N": "-3"}, {"M": {}}]}}},
    }
    ddb.put_item(TableName=TABLE, Item=every_type)
    ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET n = :n REMOVE ss",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    ddb.update_item(  # creates its item
        TableName=TABLE,
        Key={"pk": {"S": "b"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "new"}},
    )
    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "a"}})


@contextmanager
def _stock_get_records() -> Iterator[None]:
    fast = DynamoDBStreamsHandler.get_records
    DynamoDBStreamsHandler.get_records = fast.__wrapped__  # type: ignore[attr-defined,method-assign]
    try:
        yield
    finally:
        DynamoDBStreamsHandler.get_records = fast  # type: ignore[method-assign]


def _iterator(streams: Any, arn: str, kind: str, **extra: str) -> str:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    return str(
        streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType=kind, **extra
        )["ShardIterator"]
    )


def _read_all(streams: Any, iterator: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    for reads in range(1, 100):
        response = streams.get_records(ShardIterator=iterator, Limit=limit)
        records += response["Records"]
        iterator = response["NextShardIterator"]
        if not response["Records"]:
            return records, reads
    raise AssertionError("the shard never ran dry")


def test_fast_path_is_installed(clients) -> None:
    # Given the moto server the local stack runs
    # Then its GetRecords and DynamoDB serializer are the fast ones, wrapping moto's own
    from moto.dynamodb.responses import DynamoHandler

    assert getattr(DynamoDBStreamsHandler.get_records, "_aftercare_fast", False)
    assert getattr(DynamoHandler.serialized, "_aftercare_fast", False)


def test_records_order_and_sequence_numbers_match_moto(clients) -> None:
    _, streams, arn = clients
    # When the shard is read from its start in pages of 2, by the fast path and by moto's
    fast, fast_reads = _read_all(streams, _iterator(streams, arn, "TRIM_HORIZON"), 2)
    with _stock_get_records():
        stock, stock_reads = _read_all(streams, _iterator(streams, arn, "TRIM_HORIZON"), 2)
    # Then both return the same records, images, types, times and sequence numbers, in order
    assert fast == stock
    assert [r["eventName"] for r in fast] == ["INSERT", "MODIFY", "INSERT", "REMOVE"]
    assert fast[0]["dynamodb"]["NewImage"]["b"] == {"B": b"\x00\xff"}
    assert fast_reads == stock_reads == 3


def test_iterators_continue_where_moto_would(clients) -> None:
    _, streams, arn = clients
    first = _read_all(streams, _iterator(streams, arn, "TRIM_HORIZON"), 1)[0][0]
    after = {"SequenceNumber": first["dynamodb"]["SequenceNumber"]}
    # When a fast read's iterator is continued by moto's, and the other way round
    fast_page = streams.get_records(
        ShardIterator=_iterator(streams, arn, "AFTER_SEQUENCE_NUMBER", **after), Limit=1
    )
    with _stock_get_records():
        stock_next = streams.get_records(ShardIterator=fast_page["NextShardIterator"], Limit=1)
        stock_page = streams.get_records(
            ShardIterator=_iterator(streams, arn, "AFTER_SEQUENCE_NUMBER", **after), Limit=1
        )
    fast_next = streams.get_records(ShardIterator=stock_page["NextShardIterator"], Limit=1)
    # Then both reach the same records
    assert fast_page["Records"] == stock_page["Records"]
    assert fast_next["Records"] == stock_next["Records"]
    assert fast_next["Records"][0]["eventName"] == "INSERT"


def test_latest_at_the_end_reads_nothing_and_keeps_an_iterator(clients) -> None:
    _, streams, arn = clients
    # When a LATEST iterator is read with nothing new
    response = streams.get_records(ShardIterator=_iterator(streams, arn, "LATEST"))
    # Then there are no records, and an iterator to read on with
    assert response["Records"] == []
    assert response["NextShardIterator"]


def test_unknown_iterator_fails_as_moto_does(clients) -> None:
    _, streams, arn = clients
    unknown = _iterator(streams, arn, "LATEST")[:-8] + "AAAAAAA="
    # When an iterator the server never issued is read, by the fast path and by moto's
    with pytest.raises(ClientError) as fast:
        streams.get_records(ShardIterator=unknown)
    with _stock_get_records(), pytest.raises(ClientError) as stock:
        streams.get_records(ShardIterator=unknown)
    # Then both fail the same way
    assert fast.value.response["Error"]["Code"] == stock.value.response["Error"]["Code"]


def test_creation_time_is_truncated_to_the_millisecond() -> None:
    from datetime import UTC, datetime

    # Given a change made at a time with microseconds
    moment = datetime(2026, 12, 6, 3, 0, 0, 123999, tzinfo=UTC).replace(tzinfo=None)
    # Then it is written as moto's serializer writes it
    assert moto_speedups.epoch_seconds(moment) == 1796526000.123
    assert moto_speedups.epoch_seconds(moment.replace(microsecond=0)) == 1796526000


# --------------------------------------------------------------------------------------------
# SQS: the cheaper clock and retention check keep moto's visibility and retention rules
# --------------------------------------------------------------------------------------------
@pytest.fixture
def sqs(clients) -> Any:
    ddb, _, _ = clients
    return boto3.client(
        "sqs",
        endpoint_url=ddb.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_received_message_is_hidden_for_its_visibility_timeout(sqs) -> None:
    queue = sqs.create_queue(QueueName="visibility")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="m")
    # When a message is received with a visibility timeout of 1 s
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1)["Messages"]
    hidden = sqs.receive_message(QueueUrl=queue).get("Messages", [])
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    again = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=3).get("Messages", [])
    # Then it is hidden (and counted in flight) until the timeout ends, then delivered again
    assert [m["Body"] for m in first] == ["m"] and hidden == []
    assert counts["ApproximateNumberOfMessages"] == "0"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert [m["Body"] for m in again] == ["m"]
    assert again[0]["ReceiptHandle"] != first[0]["ReceiptHandle"]


def test_message_past_its_retention_period_is_not_delivered(sqs) -> None:
    from moto.sqs.models import sqs_backends

    queue = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})
    sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody="old")
    sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody="new")
    # Given one message sent longer ago than the queue keeps messages
    moto_queue = sqs_backends["123456789012"]["us-east-1"].get_queue("retention")
    moto_queue._messages[0].sent_timestamp -= 61_000
    # When the queue is read
    received = sqs.receive_message(QueueUrl=queue["QueueUrl"], MaxNumberOfMessages=10)
    then = sqs.receive_message(QueueUrl=queue["QueueUrl"], MaxNumberOfMessages=10)
    # Then moto's rule applies: the read stops at the expired message (moto returns what came
    # before it, here nothing); the fresh one is delivered by the next read
    assert received.get("Messages", []) == []
    assert [m["Body"] for m in then["Messages"]] == ["new"]


# --------------------------------------------------------------------------------------------
# DynamoDB data-plane responses: json.dumps answers what moto's serializer answers
# --------------------------------------------------------------------------------------------
@contextmanager
def _stock_dynamodb_serializer() -> Iterator[None]:
    from moto.dynamodb.responses import DynamoHandler

    fast = DynamoHandler.serialized
    DynamoHandler.serialized = fast.__wrapped__  # type: ignore[attr-defined,method-assign]
    try:
        yield
    finally:
        DynamoHandler.serialized = fast  # type: ignore[method-assign]


def _both(call: Any, reset: Any) -> tuple[Any, Any]:
    """`call` answered by the fast path and by moto's serializer (each from the state `reset`
    makes), without response metadata."""

    def answer() -> Any:
        reset()
        try:
            response = call()
        except ClientError as error:
            return ("error", error.response["Error"]["Code"])
        response.pop("ResponseMetadata", None)
        return response

    fast = answer()
    with _stock_dynamodb_serializer():
        stock = answer()
    return fast, stock


def test_data_plane_answers_match_moto(clients) -> None:
    ddb, _, _ = clients
    key = {"pk": {"S": "same"}}

    def reset() -> None:
        base = {
            "b": {"B": b"\x00\x01"},
            "n": {"N": "7"},
            "m": {"M": {"l": {"L": [{"BOOL": False}, {"NULL": True}]}}},
            "ss": {"SS": ["x", "y"]},
            "ns": {"NS": ["1", "2.5"]},
            "bs": {"BS": [b"\x01", b"\x02"]},
        }
        ddb.put_item(TableName=TABLE, Item={**key, **base})

    capacity = {"ReturnConsumedCapacity": "TOTAL"}
    calls = {
        "get": lambda: ddb.get_item(TableName=TABLE, Key=key, **capacity),
        "get missing": lambda: ddb.get_item(TableName=TABLE, Key={"pk": {"S": "none"}}),
        "batch get": lambda: ddb.batch_get_item(
            RequestItems={TABLE: {"Keys": [key, {"pk": {"S": "none"}}]}}, **capacity
        ),
        "query": lambda: ddb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "same"}},
        ),
        "scan page": lambda: ddb.scan(TableName=TABLE, Limit=1),
        "count": lambda: ddb.scan(TableName=TABLE, Select="COUNT"),
        "transact get": lambda: ddb.transact_get_items(
            TransactItems=[
                {"Get": {"TableName": TABLE, "Key": key}},
                {"Get": {"TableName": TABLE, "Key": {"pk": {"S": "none"}}}},
            ]
        ),
        "delete": lambda: ddb.delete_item(TableName=TABLE, Key=key, ReturnValues="ALL_OLD"),
        "update": lambda: ddb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        ),
        "put old": lambda: ddb.put_item(
            TableName=TABLE, Item={**key, "n": {"N": "1"}}, ReturnValues="ALL_OLD"
        ),
        "put none": lambda: ddb.put_item(TableName=TABLE, Item={**key, "n": {"N": "1"}}),
        "failed condition": lambda: ddb.put_item(
            TableName=TABLE, Item=key, ConditionExpression="attribute_not_exists(pk)"
        ),
        "transaction": lambda: ddb.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "tx"}}}}]
        ),
        "batch write": lambda: ddb.batch_write_item(
            RequestItems={TABLE: [{"PutRequest": {"Item": {"pk": {"S": "bw"}}}}]}
        ),
    }
    for name, call in calls.items():
        # When the same call is answered by both paths
        fast, stock = _both(call, reset)
        # Then the parsed answers are identical
        assert fast == stock, name

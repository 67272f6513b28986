"""The moto internals that `infra/local/moto_patches.py`, `moto_speedups.py` and `motoserver.py`
replace or call.

The local stack patches moto's DynamoDB transactions, Query, stream shards and SQS long polls.
A moto release that renames a parameter, moves a positional argument or drops an attribute
would not fail loudly there: the patch would silently stop applying or corrupt state. These
tests pin what the patches rely on, so an upgrade past the tested range fails here first,
naming the function to re-check. pyproject.toml bounds moto below the next minor release.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

import boto3
import pytest
from moto import backends, mock_aws
from moto.core import responses as moto_responses
from moto.core.request import EnvironHeaders
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import LimitedSizeDict
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.sqs import models as sqs_models
from moto.sqs.models import Queue, SQSBackend
from moto.utilities import aws_headers
from packaging.version import Version

# The parameter names (in order) each patched or called function had when the patches were
# written; `moto_patches._query` reads `index_name` positionally (args[6] after hash_key).
PINNED: dict[str, tuple[Callable[..., Any], list[str]]] = {
    "DynamoDBBackend.transact_write_items": (
        DynamoDBBackend.transact_write_items,
        ["self", "transact_items"],
    ),
    "DynamoDBBackend.update_item": (
        DynamoDBBackend.update_item,
        [
            "self",
            "table_name",
            "key",
            "update_expression",
            "expression_attribute_names",
            "expression_attribute_values",
        ],
    ),
    "DynamoDBBackend.get_table": (DynamoDBBackend.get_table, ["self", "table_name"]),
    "DynamoDBBackend.get_item": (DynamoDBBackend.get_item, ["self", "table_name", "keys"]),
    "DynamoDBBackend.put_item": (DynamoDBBackend.put_item, ["self", "table_name", "item_attrs"]),
    "DynamoDBBackend.delete_item": (DynamoDBBackend.delete_item, ["self", "table_name", "key"]),
    "StreamShard.add": (StreamShard.add, ["self", "old", "new"]),
    "DynamoDBStreamsBackend.get_records": (
        DynamoDBStreamsBackend.get_records,
        ["self", "iterator_arn", "limit"],
    ),
    "Table.query": (
        Table.query,
        [
            "self",
            "hash_key",
            "range_comparison",
            "range_objs",
            "limit",
            "exclusive_start_key",
            "scan_index_forward",
            "projection_expressions",
            "index_name",
        ],
    ),
    "Table.all_items": (Table.all_items, ["self"]),
    "Queue.wait_for_messages": (Queue.wait_for_messages, ["self", "timeout"]),
    "get_filter_expression": (get_filter_expression, ["expr", "names", "values"]),
    # moto_speedups replaces these (module attributes looked up at call time)
    "DynamoDBStreamsHandler.get_records": (DynamoDBStreamsHandler.get_records, ["self"]),
    "SQSBackend.is_message_valid_based_on_retention_period": (
        SQSBackend.is_message_valid_based_on_retention_period,
        ["self", "queue_name", "message"],
    ),
    "sqs.models.unix_time": (sqs_models.unix_time, ["dt"]),
    "sqs.models.unix_time_millis": (sqs_models.unix_time_millis, ["dt"]),
    "backends.list_of_moto_modules": (backends.list_of_moto_modules, []),
    "responses.method_names_from_class": (moto_responses.method_names_from_class, ["clazz"]),
    "request.EnvironHeaders.__iter__": (EnvironHeaders.__iter__, ["self"]),
    "aws_headers.gen_amzn_requestid_long": (aws_headers.gen_amzn_requestid_long, ["headerdict"]),
    "responses.gen_amzn_requestid_long": (moto_responses.gen_amzn_requestid_long, ["headerdict"]),
    "responses.camelcase_to_underscores": (moto_responses.camelcase_to_underscores, ["argument"]),
    "dynamo_type.LimitedSizeDict.__setitem__": (
        LimitedSizeDict.__setitem__,
        ["self", "key", "value"],
    ),
}


def _unwrapped(function: Callable[..., Any]) -> Callable[..., Any]:
    # The patches wrap some of these in place when a local stack runs in-process.
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    return function


def test_moto_is_inside_the_tested_range() -> None:
    # Given the range pyproject.toml allows
    installed = Version(version("moto"))
    # Then the installed moto is one the patches were written against
    assert Version("5.2") <= installed < Version("5.3"), (
        f"moto {installed} is outside the range infra/local/moto_patches.py was tested with; "
        "re-check every patched function, then move the bound in pyproject.toml"
    )


@pytest.mark.parametrize("name", sorted(PINNED))
def test_patched_function_keeps_its_parameters(name: str) -> None:
    # Given a moto function the local stack patches or calls with positional arguments
    function, expected = PINNED[name]
    # When its signature is read from the installed moto
    actual = list(inspect.signature(_unwrapped(function)).parameters)
    # Then the parameters the patch relies on are still there, in the same positions
    assert actual[: len(expected)] == expected, (
        f"moto changed {name}: expected leading parameters {expected}, now {actual}; "
        "re-check infra/local/moto_patches.py before upgrading moto"
    )


@pytest.fixture
def streamed_table() -> Iterator[Table]:
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_table(
            TableName="pins",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        client.put_item(TableName="pins", Item={"pk": {"S": "a"}, "sk": {"S": "1"}})
        yield dynamodb_backends["123456789012"]["us-east-1"].tables["pins"]


def test_table_and_stream_attributes_the_patches_read_exist(streamed_table: Table) -> None:
    # Given a moto table with a stream and one item
    table = streamed_table
    # Then the attributes moto_patches reads and writes are where it expects them
    for attribute in ("items", "stream_shard", "hash_key_attr", "range_key_attr"):
        assert hasattr(table, attribute), f"moto Table lost .{attribute}"
    shard = table.stream_shard
    assert shard is not None
    for attribute in ("items", "starting_sequence_number"):
        assert hasattr(shard, attribute), f"moto StreamShard lost .{attribute}"
    assert len(shard.items) == 1
    assert shard.items[0].record["eventName"] == "INSERT"
    assert "SequenceNumber" in shard.items[0].record["dynamodb"]


def test_streams_backend_keeps_its_iterator_registry() -> None:
    # moto_patches._get_records trims this dict to bound the server's memory
    with mock_aws():
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        backend = dynamodbstreams_backends["123456789012"]["us-east-1"]
        assert isinstance(backend.shard_iterators, dict)


def test_sqs_queue_keeps_its_retention_attribute() -> None:
    # moto_speedups._retained reads the retention period straight from the queue
    with mock_aws():
        sqs = boto3.client(
            "sqs",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        sqs.create_queue(QueueName="pins", Attributes={"MessageRetentionPeriod": "120"})
        from moto.sqs.models import sqs_backends

        queue = sqs_backends["123456789012"]["us-east-1"].get_queue("pins")
        assert int(queue.message_retention_period) == 120  # type: ignore[attr-defined]


def test_the_streams_module_uses_os_only_for_iterator_ids() -> None:
    # moto_speedups replaces the module's `os` with a namespace that has only `urandom`
    from moto.dynamodbstreams import models as streams_models

    assert re.findall(r"\bos\.\w+", inspect.getsource(streams_models)) == ["os.urandom"]


def test_shard_iterator_ids_are_unique_without_a_system_call(
    streamed_table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the speed-ups (tests/conftest.py), and os.urandom's calls recorded
    sizes: list[int] = []
    real_urandom = os.urandom

    def recorded(size: int) -> bytes:
        sizes.append(size)
        return real_urandom(size)

    monkeypatch.setattr("os.urandom", recorded)
    streams = boto3.client(
        "dynamodbstreams",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = streams.list_streams(TableName=streamed_table.name)["Streams"][0]["StreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    # When iterators are taken and read
    iterators = [
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for _ in range(3)
    ]
    page = streams.get_records(ShardIterator=iterators[0])
    # Then every iterator is new, as long as moto's, and the records are read
    assert len({*iterators, page["NextShardIterator"]}) == 4
    assert {len(iterator) for iterator in iterators} == {len(page["NextShardIterator"])}
    assert [record["eventName"] for record in page["Records"]] == ["INSERT"]
    # and no iterator drew its 472 bytes from the system (other callers, e.g. uuid4, may)
    assert 472 not in sizes

"""DynamoDB stream event sources: a real worker subprocess reading a serial moto server's streams.

One worker serves four stream sources (one table each), as a function with several DynamoDB
events would; each test writes to its own table.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamLambdaOnFailureDestinationModel,
    DynamoDBStreamModel,
)

from infra.local.motoserver import SerialMotoServer
from tests.fakes.aws import moto_clients
from tests.integration.test_worker import Child, eventually, start_spec

pytestmark = pytest.mark.integration

REGION = "us-east-1"
TABLES = ("changes", "meta", "poison", "partial")

HANDLER = textwrap.dedent(
    """
    import json
    import os
    import time
    from pathlib import Path

    from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

    LOG = Path(os.environ["INVOCATIONS_FILE"])
    FAILED_ONCE = Path(os.environ["FAILED_ONCE_DIR"])


    def _mode(record):
        image = record["dynamodb"].get("NewImage") or {}
        return image.get("mode", {}).get("S")


    def _log(event, outcome):
        entry = {
            "at": time.time(),
            "table": event["Records"][0]["eventSourceARN"].split("/")[1],
            "records": event["Records"],
            "outcome": outcome,
        }
        with LOG.open("a") as log:
            log.write(json.dumps(entry) + "\\n")


    def handler(event, context):
        DynamoDBStreamModel.model_validate(event)  # the exact Lambda DynamoDB stream event
        if any(_mode(record) == "raise" for record in event["Records"]):
            _log(event, "raised")
            raise RuntimeError("poison record")
        for record in event["Records"]:
            number = record["dynamodb"]["SequenceNumber"]
            marker = FAILED_ONCE / number
            if _mode(record) == "fail-once" and not marker.exists():
                marker.touch()
                _log(event, "failed:" + number)
                return {"batchItemFailures": [{"itemIdentifier": number}]}
        _log(event, "ok")
        return {"batchItemFailures": []}
    """
)


@dataclass
class StreamWorld:
    endpoint: str
    ddb: Any
    sqs: Any
    tables: dict[str, dict[str, str]]  # name -> {"arn": stream ARN}
    dlq_url: str
    worker: Child
    invocations_file: Path

    def invocations(self, table: str) -> list[dict[str, Any]]:
        if not self.invocations_file.exists():
            return []
        entries = [json.loads(line) for line in self.invocations_file.read_text().splitlines()]
        return [entry for entry in entries if entry["table"] == table]

    def processed(self, table: str) -> list[dict[str, Any]]:
        """Records the handler completed: all of an ok batch, those before a reported failure."""
        done: list[dict[str, Any]] = []
        for entry in self.invocations(table):
            if entry["outcome"] == "ok":
                done += entry["records"]
            elif entry["outcome"].startswith("failed:"):
                failed = entry["outcome"].removeprefix("failed:")
                numbers = [r["dynamodb"]["SequenceNumber"] for r in entry["records"]]
                done += entry["records"][: numbers.index(failed)]
        return done


def _create_table(ddb: Any, name: str) -> str:
    description = ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return str(description["LatestStreamArn"])


def _source(name: str, arn: str, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": name.title(),
        "stream_arn": arn,
        "table_name": name,
        "batch_size": 10,
        "starting_position": "TRIM_HORIZON",
        **overrides,
    }


def _spec(tmp: Path, endpoint: str, arns: dict[str, str], dlq_url: str) -> dict[str, Any]:
    code = tmp / "code"
    code.mkdir()
    (code / "handler.py").write_text(HANDLER)
    (tmp / "failed-once").mkdir()
    meta_only = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": ["META"]}}}}
    return {
        "logical_id": "StreamConsumerFunction",
        "function_name": "stream-consumer-test",
        "code_uri": str(code),
        "handler": "handler.handler",
        "environment": {
            "INVOCATIONS_FILE": str(tmp / "invocations.jsonl"),
            "FAILED_ONCE_DIR": str(tmp / "failed-once"),
        },
        "timeout": 5,
        "memory_size": 256,
        "region": REGION,
        "aws_endpoint_url": endpoint,
        "stream_sources": [
            _source("changes", arns["changes"], starting_position="LATEST"),
            _source("meta", arns["meta"], filter_patterns=[meta_only]),
            _source(
                "poison",
                arns["poison"],
                maximum_retry_attempts=2,
                bisect_batch_on_function_error=True,
                on_failure_destination={"type": "sqs", "queue_url": dlq_url},
            ),
            _source("partial", arns["partial"], report_batch_item_failures=True),
        ],
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamWorld]:
    tmp = tmp_path_factory.mktemp("streams")
    with SerialMotoServer() as server:
        ddb, sqs = moto_clients(server.url, "dynamodb", "sqs")
        arns = {name: _create_table(ddb, name) for name in TABLES}
        # Given a change made before the worker starts (LATEST must not deliver it)
        ddb.put_item(TableName="changes", Item={"pk": {"S": "early"}, "sk": {"S": "META"}})
        dlq_url = sqs.create_queue(QueueName="stream-failures")["QueueUrl"]
        worker = start_spec(
            "infra.local.worker", _spec(tmp, server.url, arns, dlq_url), tmp, "worker"
        )
        world = StreamWorld(
            endpoint=server.url,
            ddb=ddb,
            sqs=sqs,
            tables={name: {"arn": arn} for name, arn in arns.items()},
            dlq_url=dlq_url,
            worker=worker,
            invocations_file=tmp / "invocations.jsonl",
        )
        # The LATEST iterator is taken right after the poller finds its shard: wait for that
        # (a fixed 0.5 s from start was too short on a loaded machine), then a little more.
        eventually(
            lambda: "Changes: reading shard" in worker.log.read_text(),
            what="the LATEST poller to find its shard",
        )
        time.sleep(0.5)
        yield world
        if worker.process.poll() is None:
            started = time.monotonic()
            assert worker.stop() == 0, worker.log.read_text()
            assert time.monotonic() - started < 5


def _item(pk: str, sk: str = "META", **attributes: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}}
    item.update({name: {"S": value} for name, value in attributes.items()})
    return item


def _put(table: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": item}}


def _summary(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records]


# ---------------------------------------------------------------------------------------------
def test_changes_arrive_in_order_as_lambda_stream_records(world):
    ddb, table = world.ddb, "changes"
    # Given a worker reading the table's stream from LATEST
    # When items are inserted, modified and deleted, singly and in a transaction
    written_at = time.time()
    ddb.put_item(TableName=table, Item=_item("a", status="open"))
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}, "sk": {"S": "META"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "closed"}},
    )
    ddb.put_item(TableName=table, Item=_item("a", status="closed"))  # changes nothing
    ddb.transact_write_items(
        TransactItems=[
            _put(table, _item("b")),
            {"Delete": {"TableName": table, "Key": {"pk": {"S": "a"}, "sk": {"S": "META"}}}},
        ]
    )
    ddb.update_item(  # an update that creates its item
        TableName=table,
        Key={"pk": {"S": "c"}, "sk": {"S": "META"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"S": "1"}},
    )
    expected = [("INSERT", "a"), ("MODIFY", "a"), ("INSERT", "b"), ("REMOVE", "a"), ("INSERT", "c")]
    eventually(lambda: len(world.processed(table)) >= len(expected), what="the changes")
    time.sleep(0.5)
    # Then each change arrived once, in order, and the one made before start never did
    records = world.processed(table)
    assert _summary(records) == expected
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == sorted(numbers)
    # And the records are Lambda's DynamoDB stream records with old and new images
    DynamoDBStreamModel.model_validate({"Records": records})
    modify, remove, upsert = records[1], records[3], records[4]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "open"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "closed"}
    assert "NewImage" not in remove["dynamodb"]
    assert remove["dynamodb"]["OldImage"]["status"] == {"S": "closed"}
    assert upsert["dynamodb"]["NewImage"]["n"] == {"S": "1"}
    assert modify["eventSourceARN"] == world.tables[table]["arn"]
    assert (modify["eventSource"], modify["eventVersion"], modify["awsRegion"]) == (
        "aws:dynamodb",
        "1.1",
        REGION,
    )
    assert modify["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert isinstance(modify["dynamodb"]["ApproximateCreationDateTime"], float)
    # And the first change reached the handler quickly
    latency = world.invocations(table)[0]["at"] - written_at
    assert latency < 1.0


def test_filter_patterns_skip_records_that_match_none(world):
    ddb, table = world.ddb, "meta"
    # Given a source whose filter wants only inserted META items
    # When META and non-META items are written, and a META item is modified
    ddb.put_item(TableName=table, Item=_item("t1", "EVENT#1"))
    ddb.put_item(TableName=table, Item=_item("t1", "META"))
    ddb.put_item(TableName=table, Item=_item("t1", "META", status="closed"))
    ddb.put_item(TableName=table, Item=_item("t2", "EVENT#1"))
    ddb.put_item(TableName=table, Item=_item("t2", "META"))
    eventually(lambda: len(world.processed(table)) >= 2, what="the META inserts")
    time.sleep(0.5)
    # Then only the inserted META items were delivered
    records = world.processed(table)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "t1"),
        ("INSERT", "t2"),
    ]
    assert {r["dynamodb"]["Keys"]["sk"]["S"] for r in records} == {"META"}


def test_a_failing_record_is_retried_then_described_on_the_failure_queue(world):
    ddb, table = world.ddb, "poison"
    # Given a source with 2 retries, bisection and an on-failure queue
    # When one transaction writes a good record, a poison record and another good record
    ddb.transact_write_items(
        TransactItems=[
            _put(table, _item("good-1")),
            _put(table, _item("poison", mode="raise")),
            _put(table, _item("good-2")),
        ]
    )
    messages: list[dict[str, Any]] = []

    def failure_described() -> bool:
        received = world.sqs.receive_message(QueueUrl=world.dlq_url, WaitTimeSeconds=0)
        messages.extend(received.get("Messages", []))
        return bool(messages)

    eventually(failure_described, timeout=30, what="the on-failure record")
    eventually(lambda: len(world.processed(table)) >= 2, what="the good records")
    # Then the poison record alone was discarded after 1 + 2 invocations of its own
    document = json.loads(messages[0]["Body"])
    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(document)
    poison_calls = [
        entry
        for entry in world.invocations(table)
        if [r["dynamodb"]["Keys"]["pk"]["S"] for r in entry["records"]] == ["poison"]
    ]
    poison_number = poison_calls[0]["records"][0]["dynamodb"]["SequenceNumber"]
    info = document["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_number
    assert info["streamArn"] == world.tables[table]["arn"]
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["requestContext"]["functionArn"].endswith(":function:stream-consumer-test")
    assert document["responseContext"]["functionError"] == "Unhandled"
    assert len(poison_calls) == 3
    # And the good records around it were each processed once
    assert sorted(_summary(world.processed(table))) == [("INSERT", "good-1"), ("INSERT", "good-2")]


def test_a_partial_batch_failure_resumes_at_the_failed_record(world):
    ddb, table = world.ddb, "partial"
    # Given a source with ReportBatchItemFailures
    # When one batch holds a record that fails once between two good ones
    ddb.transact_write_items(
        TransactItems=[
            _put(table, _item("r1")),
            _put(table, _item("r2", mode="fail-once")),
            _put(table, _item("r3")),
        ]
    )
    eventually(lambda: len(world.processed(table)) >= 3, what="all three records")
    time.sleep(1.5)  # longer than the retry backoff: a record not checkpointed would come back
    # Then the retry started at the failed record, and every record completed exactly once
    invocations = world.invocations(table)
    assert [_summary(entry["records"]) for entry in invocations] == [
        [("INSERT", "r1"), ("INSERT", "r2"), ("INSERT", "r3")],
        [("INSERT", "r2"), ("INSERT", "r3")],
    ]
    assert _summary(world.processed(table)) == [
        ("INSERT", "r1"),
        ("INSERT", "r2"),
        ("INSERT", "r3"),
    ]


# ---------------------------------------------------------------------------------------------
# Provisioning: SAM `Type: DynamoDB` events become the worker's stream sources
# ---------------------------------------------------------------------------------------------
SAM_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: things-{suffix}
      BillingMode: PAY_PER_REQUEST
      KeySchema:
        - AttributeName: pk
          KeyType: HASH
      AttributeDefinitions:
        - AttributeName: pk
          AttributeType: S
      StreamSpecification:
        StreamViewType: NEW_AND_OLD_IMAGES
  Failures:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: thing-failures-{suffix}
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: code/
      Handler: handler.handler
      Runtime: python3.12
      Events:
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 25
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
            MaximumRetryAttempts: 3
            BisectBatchOnFunctionError: true
            FilterCriteria:
              Filters:
                - Pattern: '{{"eventName": ["INSERT"]}}'
                - Pattern: '{{"dynamodb": {{"Keys": {{"pk": {{"S": [{{"prefix": "A#"}}]}}}}}}}}'
            DestinationConfig:
              OnFailure:
                Destination: !GetAtt Failures.Arn
{extra}
"""


def _provision_sam(tmp_path: Path, extra: str = "") -> Any:
    from infra.local.provision import provision
    from infra.local.provision_context import AwsClients
    from infra.local.template import load_template

    (tmp_path / "code").mkdir(exist_ok=True)
    path = tmp_path / "template.yaml"
    suffix = uuid.uuid4().hex[:8]  # moto's in-process state outlives each server
    path.write_text(SAM_TEMPLATE.format(suffix=suffix, extra=extra))
    with SerialMotoServer() as server:
        clients = AwsClients.for_endpoint(server.url, REGION)
        result = provision(load_template(path), clients, endpoint_url=server.url, region=REGION)
        table = clients.dynamodb.describe_table(TableName=f"things-{suffix}")["Table"]
    return result, table["LatestStreamArn"], suffix


def test_a_sam_dynamodb_event_becomes_a_stream_source(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    # Given a function with a fully specified DynamoDB event
    # When the template is provisioned
    result, stream_arn, suffix = _provision_sam(tmp_path)
    # Then the worker spec carries the source, with moto's real stream ARN and the queue's URL
    (source,) = result.workers["Consumer"]["stream_sources"]
    assert source == {
        "event_id": "Changes",
        "stream_arn": stream_arn,
        "table_name": f"things-{suffix}",
        "batch_size": 25,
        "starting_position": "TRIM_HORIZON",
        "max_batching_window_s": 1.0,
        "report_batch_item_failures": True,
        "maximum_retry_attempts": 3,
        "bisect_batch_on_function_error": True,
        "filter_patterns": [
            {"eventName": ["INSERT"]},
            {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "A#"}]}}}},
        ],
        "on_failure_destination": {
            "type": "sqs",
            "queue_url": source["on_failure_destination"]["queue_url"],
        },
    }
    assert source["on_failure_destination"]["queue_url"].endswith(f"/thing-failures-{suffix}")
    from infra.local.worker_spec import WorkerSpec

    WorkerSpec.model_validate(result.workers["Consumer"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("            TumblingWindowInSeconds: 30", "TumblingWindowInSeconds"),
        ("            ParallelizationFactor: 2", "ParallelizationFactor"),
    ],
)
def test_an_unsupported_dynamodb_event_property_stops_provisioning(
    tmp_path, monkeypatch, extra, message
):
    from infra.local.provision_context import ProvisionError

    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    # Given a DynamoDB event with a property the local stack does not emulate
    # When provisioned / Then start-up fails naming the property
    with pytest.raises(ProvisionError, match=message):
        _provision_sam(tmp_path, extra)


# ---------------------------------------------------------------------------------------------
# The moto server's streams (infra.local.moto_patches): only changes that happened are recorded
# ---------------------------------------------------------------------------------------------
def _stream_events(endpoint: str, stream_arn: str) -> list[tuple[str, str]]:
    streams = boto3.client(
        "dynamodbstreams",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True
    return _summary(records)


def test_the_stream_records_only_changes_that_took_effect():
    with SerialMotoServer() as server:
        ddb, _ = moto_clients(server.url, "dynamodb", "sqs")
        table = f"changes-{uuid.uuid4().hex[:8]}"
        stream_arn = _create_table(ddb, table)
        # Given an item
        ddb.put_item(TableName=table, Item=_item("a", status="open"))
        # When it is written again unchanged, a transaction fails half-way (rolled back),
        # and an update creates a new item
        ddb.put_item(TableName=table, Item=_item("a", status="open"))
        with pytest.raises(ddb.exceptions.ClientError):
            ddb.transact_write_items(
                TransactItems=[
                    _put(table, _item("b")),
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": {"S": "a"}, "sk": {"S": "META"}},
                            "UpdateExpression": "SET #s = :undefined",
                            "ExpressionAttributeNames": {"#s": "status"},
                        }
                    },
                ]
            )
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": "c"}, "sk": {"S": "META"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"S": "1"}},
        )
        # Then the stream holds the first insert and one insert for the upsert, nothing else
        assert _stream_events(server.url, stream_arn) == [("INSERT", "a"), ("INSERT", "c")]
        assert "b" not in {i["pk"]["S"] for i in ddb.scan(TableName=table)["Items"]}

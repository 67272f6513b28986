"""DynamoDB on a moto server of its own, behind the main server's endpoint (infra.local.endpoints).

The dedicated server runs in a separate process, as in the local stack: moto's backends are
per process, so only a real second process shows where a table lives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from infra.local.motoserver import STATS_PATH, SerialMotoServer

ROOT = Path(__file__).resolve().parents[2]


def _client(service: str, url: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def dynamodb_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.motoserver", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY "), line
        yield line.split()[1]
    finally:
        process.terminate()
        process.wait(10)


def _create_table(ddb) -> None:
    ddb.create_table(
        TableName="things",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )


def test_main_endpoint_forwards_dynamodb_to_its_own_server(dynamodb_server: str) -> None:
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer(forwards={"dynamodb": dynamodb_server}) as main:
        # Given a table and a queue created through the main endpoint
        ddb = _client("dynamodb", main.url)
        _create_table(ddb)
        ddb.put_item(TableName="things", Item={"pk": {"S": "a"}})
        _client("sqs", main.url).create_queue(QueueName="jobs")
        # When each server is asked directly
        direct = _client("dynamodb", dynamodb_server)
        queues_there = _client("sqs", dynamodb_server).list_queues().get("QueueUrls", [])
        # Then the table (and its stream) lives on the DynamoDB server, the queue on the main one
        assert direct.get_item(TableName="things", Key={"pk": {"S": "a"}})["Item"]
        stream_arn = direct.describe_table(TableName="things")["Table"]["LatestStreamArn"]
        streams = _client("dynamodbstreams", main.url).describe_stream(StreamArn=stream_arn)
        assert streams["StreamDescription"]["StreamStatus"] == "ENABLED"
        assert queues_there == []
        assert _client("sqs", main.url).list_queues()["QueueUrls"]


def test_main_stats_answer_for_every_server(dynamodb_server: str) -> None:
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer(forwards={"dynamodb": dynamodb_server}) as main:
        # Given one request for each server, both through the main endpoint
        _client("dynamodb", main.url).list_tables()
        _client("sns", main.url).create_topic(Name="t")
        # When the main server's statistics are read
        with urllib.request.urlopen(main.url + STATS_PATH) as answer:
            stats = json.load(answer)
    # Then they hold both servers' operations, and each server's own share
    assert stats["operations"]["DynamoDB.ListTables"]["requests"] == 1
    assert stats["operations"]["SNS.CreateTopic"]["requests"] == 1
    assert stats["servers"]["dynamodb"]["requests"] == 1
    assert stats["servers"]["main"]["requests"] == 1

"""The benchmark's request capture records a process's DynamoDB requests while switched on."""

from __future__ import annotations

import os

import boto3
import botocore.session
import pytest

from infra.bench import capacity
from infra.bench.capture import CAPTURE_VARIABLE, SWITCH, install, read_records
from infra.local.motoserver import SerialMotoServer


@pytest.fixture
def capture_dir(tmp_path, monkeypatch):
    original = botocore.session.Session.create_client
    monkeypatch.setenv(CAPTURE_VARIABLE, str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn-under-test")
    install()
    yield tmp_path
    botocore.session.Session.create_client = original  # other tests' clients stay unhooked


def test_requests_are_recorded_with_their_items_only_while_capture_is_on(capture_dir):
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    with SerialMotoServer() as server:
        ddb = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        ddb.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        )
        # Given capture off, a write is not recorded
        ddb.put_item(TableName="t", Item={"pk": {"S": "before"}})
        # When capture is switched on
        (capture_dir / SWITCH).touch()
        ddb.put_item(TableName="t", Item={"pk": {"S": "a" * 2000}})
        answer = ddb.get_item(TableName="t", Key={"pk": {"S": "a" * 2000}})
    # Then the function asked for consumed capacity, and its requests are recorded in full
    assert "ConsumedCapacity" in answer
    records = read_records(capture_dir)
    assert [r["op"] for r in records] == ["PutItem", "GetItem"]
    assert {r["function"] for r in records} == {"fn-under-test"}
    units = capacity.units_of(records, lambda table, key: None)
    assert units.writes == {"t": 2}  # a 2 KB item: 2 write units
    assert units.reads == {"t": 0.5}

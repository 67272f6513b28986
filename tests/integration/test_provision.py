"""Provisioning the real template into a moto server, and the one-request-at-a-time server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from infra.local.motoserver import SerialMotoServer
from infra.local.provision import NOT_EMULATED, provision
from infra.local.provision_context import AwsClients, ProvisionResult
from infra.local.template import Template, load_template

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


@pytest.fixture(scope="module")
def aws_credentials() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        yield


@pytest.fixture(scope="module")
def moto_url(aws_credentials: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def clients(moto_url: str) -> AwsClients:
    return AwsClients.for_endpoint(moto_url, REGION)


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="module")
def provisioned(template: Template, clients: AwsClients, moto_url: str) -> ProvisionResult:
    return provision(template, clients, endpoint_url=moto_url, region=REGION)


def resources_of(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r.properties for lid, r in template.resources.items() if r.type == kind}


# ----------------------------------------------------------------------------- tables


def test_tables_have_the_templates_keys_indexes_streams_and_ttl(
    template: Template, provisioned: ProvisionResult, clients: AwsClients
) -> None:
    # Given the real template provisioned into moto
    for logical_id, props in resources_of(template, "AWS::DynamoDB::Table").items():
        # When each table is described
        name = provisioned.resources[logical_id]
        table = clients.dynamodb.describe_table(TableName=name)["Table"]
        # Then it has exactly the template's key schema, attributes and GSIs
        assert table["KeySchema"] == props["KeySchema"], logical_id
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(
            props["AttributeDefinitions"], key=str
        )
        expected_gsis = {
            g["IndexName"]: g["KeySchema"] for g in props.get("GlobalSecondaryIndexes", [])
        }
        actual_gsis = {
            g["IndexName"]: g["KeySchema"] for g in table.get("GlobalSecondaryIndexes", [])
        }
        assert actual_gsis == expected_gsis, logical_id
        assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
        # And streams, TTL and point-in-time recovery as the template asks
        if "StreamSpecification" in props:
            assert table["StreamSpecification"] == {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        ttl = clients.dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in props:
            assert ttl["TimeToLiveStatus"] == "ENABLED"
            assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
        backups = clients.dynamodb.describe_continuous_backups(TableName=name)
        pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_tickets_table_exposes_its_stream_arn(provisioned: ProvisionResult) -> None:
    assert provisioned.physical["TicketsTable"]["StreamArn"].startswith("arn:aws:dynamodb:")
    assert provisioned.resources["TicketsTable"] == "aftercare-tickets-local"


# ----------------------------------------------------------------------------- queues, topic


def test_fault_queue_redrives_to_the_dead_letter_queue(
    provisioned: ProvisionResult, clients: AwsClients
) -> None:
    # Given both queues created
    queue = clients.sqs.get_queue_attributes(
        QueueUrl=provisioned.resources["FaultQueue"], AttributeNames=["All"]
    )["Attributes"]
    # Then the redrive policy points at the DLQ's ARN, with the template's receive count
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == provisioned.physical["FaultDeadLetterQueue"]["Arn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert (queue["VisibilityTimeout"], queue["MessageRetentionPeriod"]) == ("180", "345600")
    assert queue["SqsManagedSseEnabled"] == "true"


def test_ops_topic_exists_with_its_key(provisioned: ProvisionResult, clients: AwsClients) -> None:
    # The customer-managed key is not emulated: the topic names its placeholder id
    attributes = clients.sns.get_topic_attributes(TopicArn=provisioned.resources["OpsAlertsTopic"])
    key = provisioned.physical["OpsNotificationsKey"]["Ref"]
    assert attributes["Attributes"]["KmsMasterKeyId"] == key != "alias/aws/sns"


# ----------------------------------------------------------------------------- IoT


def test_device_policy_exists_with_the_unescaped_thing_variable(
    provisioned: ProvisionResult, clients: AwsClients
) -> None:
    policy = clients.iot.get_policy(policyName=provisioned.resources["DeviceIoTPolicy"])
    document = json.loads(policy["policyDocument"])
    connect = document["Statement"][0]
    assert connect["Resource"] == (
        "arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"
    )


def test_topic_rule_exists_and_is_handed_to_the_bridge(
    template: Template, provisioned: ProvisionResult, clients: AwsClients
) -> None:
    # Given the fault topic rule
    name = provisioned.resources["FaultTopicRule"]
    rule = clients.iot.get_topic_rule(ruleName=name)["rule"]
    sql = template.resources["FaultTopicRule"].properties["TopicRulePayload"]["Sql"]
    # Then moto holds it as the template defines it
    assert name == "aftercare_fault_intake_local"
    assert rule["sql"] == sql
    assert rule["actions"][0]["sqs"]["queueUrl"] == provisioned.resources["FaultQueue"]
    # And the bridge spec routes to the fault queue, errors to the DLQ
    assert [r for r in provisioned.rules if r["name"] == name] == [
        {
            "name": name,
            "sql": sql,
            "actions": [
                {
                    "type": "sqs",
                    "queue_url": provisioned.resources["FaultQueue"],
                    "use_base64": False,
                }
            ],
            "error_action": {
                "type": "sqs",
                "queue_url": provisioned.resources["FaultDeadLetterQueue"],
                "use_base64": False,
            },
        }
    ]


# ----------------------------------------------------------------------------- functions


def test_worker_specs_follow_the_template(
    template: Template, provisioned: ProvisionResult, moto_url: str
) -> None:
    # Given the fault intake worker spec
    spec = provisioned.workers["FaultIntakeFunction"]
    # Then it polls the fault queue the way the event source mapping would
    assert spec["sqs_sources"] == [
        {
            "event_id": "Faults",
            "queue_url": provisioned.resources["FaultQueue"],
            "queue_arn": provisioned.physical["FaultQueue"]["Arn"],
            "batch_size": 10,
            "max_batching_window_s": 1.0,
            "report_batch_item_failures": True,
            "maximum_concurrency": 10,  # QueueConsumerMaxConcurrency's default
        }
    ]
    # And it has the Globals merged with its own settings, all env values as strings
    function_env = template.resources["FaultIntakeFunction"].properties["Environment"]
    assert set(spec["environment"]) == set(function_env["Variables"])
    assert all(isinstance(v, str) for v in spec["environment"].values())
    assert (
        spec["environment"].items()
        >= {
            "POWERTOOLS_SERVICE_NAME": "aftercare",
            "POWERTOOLS_METRICS_NAMESPACE": "Aftercare",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
            "DEVICES_TABLE": "aftercare-devices-local",
            "CUSTOMERS_TABLE": "aftercare-customers-local",
            "TICKETS_TABLE": "aftercare-tickets-local",
            "PARKED_TABLE": "aftercare-parked-local",
            "REPEAT_WINDOW_DAYS": "30",
        }.items()
    )
    assert spec["layer_paths"] == [str(REPO_ROOT / "shared")]
    assert spec["code_uri"] == str(REPO_ROOT / "functions" / "fault_intake")
    assert (spec["timeout"], spec["memory_size"], spec["handler"]) == (30, 512, "handler.handler")
    assert spec["aws_endpoint_url"] == moto_url


def test_every_emulated_resource_is_recorded(
    template: Template, provisioned: ProvisionResult
) -> None:
    not_emulated = {item["logical_id"] for item in provisioned.not_emulated}
    skipped = set(provisioned.skipped)  # e-mail subscriptions without an address
    expected = {lid for lid, r in template.resources.items() if r.type in NOT_EMULATED} - skipped
    assert not_emulated == expected and {"FaultRuleRole", "FaultDeadLetterAlarm"} <= expected
    assert {"OpsAlertEmailSubscription", "PurchasingEmailSubscription"} <= skipped
    assert set(provisioned.resources) == set(template.resources) - not_emulated - skipped
    assert all(item["reason"] for item in provisioned.not_emulated)


# ----------------------------------------------------------------------------- serial server


@pytest.fixture(scope="module")
def serial_clients(aws_credentials: None) -> Iterator[AwsClients]:
    with SerialMotoServer() as server:
        yield AwsClients.for_endpoint(server.url, REGION)


def make_table(clients: AwsClients, name: str) -> None:
    clients.dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def race(threads: int, attempt: Callable[[int], bool]) -> list[bool]:
    """Run `attempt(i)` on `threads` threads released at the same instant."""
    start = threading.Barrier(threads)
    outcomes: list[bool] = [False] * threads

    def run(index: int) -> None:
        start.wait()
        outcomes[index] = attempt(index)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def conditional_failure(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


def test_concurrent_conditional_puts_have_exactly_one_winner(serial_clients: AwsClients) -> None:
    # Given an empty table on the one-request-at-a-time server
    ddb = serial_clients.dynamodb
    make_table(serial_clients, "race-put")

    # When 20 threads put the same key at once, each only if it does not exist yet
    def put(index: int) -> bool:
        try:
            ddb.put_item(
                TableName="race-put",
                Item={"pk": {"S": "LOCK"}, "owner": {"N": str(index)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            assert conditional_failure(exc), exc
            return False
        return True

    outcomes = race(20, put)
    # Then exactly one succeeds, and the stored item is the winner's
    assert outcomes.count(True) == 1
    stored = ddb.get_item(TableName="race-put", Key={"pk": {"S": "LOCK"}})["Item"]
    assert int(stored["owner"]["N"]) == outcomes.index(True)


def test_concurrent_transactions_never_oversell(serial_clients: AwsClients) -> None:
    # Given 5 units in stock
    ddb = serial_clients.dynamodb
    make_table(serial_clients, "race-stock")
    ddb.put_item(TableName="race-stock", Item={"pk": {"S": "SKU"}, "on_hand": {"N": "5"}})

    # When 20 threads each reserve one unit in a transaction guarded by on_hand >= 1
    def reserve(index: int) -> bool:
        try:
            ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "race-stock",
                            "Key": {"pk": {"S": "SKU"}},
                            "UpdateExpression": "SET on_hand = on_hand - :one",
                            "ConditionExpression": "on_hand >= :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                    {
                        "Put": {
                            "TableName": "race-stock",
                            "Item": {"pk": {"S": f"RES#{index}"}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            assert conditional_failure(exc), exc
            return False
        return True

    outcomes = race(20, reserve)
    # Then exactly five reservations exist and stock is zero, never negative
    assert outcomes.count(True) == 5
    item = ddb.get_item(TableName="race-stock", Key={"pk": {"S": "SKU"}})["Item"]
    assert item["on_hand"]["N"] == "0"


def test_sqs_long_poll_does_not_block_other_requests(serial_clients: AwsClients) -> None:
    # Given a consumer long-polling an empty queue
    url = serial_clients.sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    received: list[Any] = []
    consumer = threading.Thread(
        target=lambda: received.extend(
            serial_clients.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10).get("Messages", [])
        )
    )
    consumer.start()
    time.sleep(0.3)
    # When another client sends a message meanwhile
    began = time.monotonic()
    serial_clients.sqs.send_message(QueueUrl=url, MessageBody="hello")
    sent_after = time.monotonic() - began
    consumer.join(timeout=5)
    # Then the send was not held up by the poll, and the poll returned the message promptly
    assert sent_after < 1.0
    assert not consumer.is_alive()
    assert [m["Body"] for m in received] == ["hello"]


def test_server_process_announces_its_url_and_stops_on_sigterm() -> None:
    # Given the server started as the local stack starts it
    env = {**os.environ, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.motoserver", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # Then it prints READY with its URL, and serves AWS APIs there
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        clients = AwsClients.for_endpoint(line.removeprefix("READY "), REGION)
        assert clients.sqs.list_queues().get("QueueUrls", []) == []
        # And SIGTERM stops it cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

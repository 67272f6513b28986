"""Oversized and poison messages never stall the local IoT rules bridge (finding 1 of "Nothing
lost, nothing leaked"): the broker refuses what IoT Core would refuse, and what the queues refuse
is parked, bounded, through the ParkedTable, while later messages keep flowing."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from aftercare.adapters.parked import DynamoParkedStore
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from infra.local.bridge_spec import BridgeSpec
from infra.local.mqtt_bridge import Bridge
from infra.local.provision_stores import create_table_request
from infra.local.rule_engine import DIRECT_PARK_SOURCE, DirectParking, Inbound, Outcome, build_rules
from infra.local.stack_broker import MAX_MESSAGE_BYTES
from infra.local.template import load_template
from tests.integration import test_iot_bridge as bridge_tests
from tests.integration.test_iot_bridge import REGION, bodies, collect, sqs_action

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DYNAMODB_ITEM_LIMIT = 400 * 1024

# the moto server, its queues, the broker and the bridge subprocess of the bridge tests
moto = bridge_tests.moto
moto_endpoint = bridge_tests.moto_endpoint
sqs = bridge_tests.sqs
queues = bridge_tests.queues
broker = bridge_tests.broker
spec_file = bridge_tests.spec_file
bridge = bridge_tests.bridge


@pytest.fixture
def ddb(moto_endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def parked_table(ddb: Any) -> str:
    properties = load_template(ROOT / "template.yaml").resources["ParkedTable"].properties
    name = f"test-parked-{uuid.uuid4().hex[:8]}"  # the moto server's state outlives a test
    ddb.create_table(**create_table_request({**properties, "TableName": name}, name))
    return name


def in_process_bridge(
    moto_endpoint: str, sqs: Any, ddb: Any, queues: dict[str, str], parked_table: str
) -> Bridge:
    spec = BridgeSpec.model_validate(
        {
            "mqtt_url": "mqtt://127.0.0.1:1",  # never connected: messages are fed to settle()
            "aws_endpoint_url": moto_endpoint,
            "region": REGION,
            "client_id": "unused",
            "parked_table": parked_table,
            "rules": [
                {
                    "name": "aftercare_fault_intake_test",
                    "sql": bridge_tests.template_fault_sql(),
                    "actions": [sqs_action(queues["faults"])],
                    "error_action": sqs_action(queues["dlq"]),
                },
                {
                    "name": "error_action_gone",
                    "sql": "SELECT topic() AS topic FROM 'dt/aftercare/+/broken'",
                    "actions": [sqs_action(queues["missing"])],
                    "error_action": sqs_action(queues["missing"]),
                },
            ],
        }
    )
    rules = build_rules(spec, sqs)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    bucket = f"test-parked-payloads-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    return Bridge(spec, rules, threading.Event(), DirectParking(parked_table, ddb, bucket, s3))


def inbound(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, qos=1, mid=1, generation=0, received_ms=time.time_ns() // 10**6)


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(k) + len(json.dumps(v, default=str)) for k, v in item.items())


def test_an_envelope_over_sqs_limit_is_parked_directly_and_the_stream_goes_on(
    moto_endpoint, sqs, ddb, queues, parked_table
):
    bridge = in_process_bridge(moto_endpoint, sqs, ddb, queues, parked_table)
    # Given a fault whose envelope (base64) is over SQS's 1 MiB, as is its error document
    poison = b'{"message": "' + b"x" * 800_000 + b'"}'
    # When it is fed straight to the bridge
    started = time.monotonic()
    outcomes = bridge.settle(inbound("dt/aftercare/t-1/fault", poison))
    # Then it is settled at once (no retry can make it fit): parked, not blocking
    assert outcomes == [("aftercare_fault_intake_test", Outcome.PARKED)]
    assert time.monotonic() - started < 3
    (item,) = DynamoParkedStore(table=parked_table, ddb=ddb).list()
    assert item["source"] == DIRECT_PARK_SOURCE
    assert item["reason"] == "undeliverable:SqsAction"
    assert item["thing"] == "t-1" and "over SQS's" in item["detail"]
    assert item["payload_bytes"] == len(poison)
    assert item["payload_sha256"] == hashlib.sha256(poison).hexdigest()
    assert item_bytes(item) < DYNAMODB_ITEM_LIMIT
    # And the whole error document, too big for the item, was kept in the bucket
    stored = DynamoParkedStore(
        table=parked_table,
        ddb=ddb,
        s3=boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint),
    ).kept_envelope(item["envelope_ref"])
    assert base64.b64decode(stored["base64OriginalPayload"]) == poison
    # And the next fault is delivered as usual; nothing went to the dead-letter queue
    good = b'{"fault_id": "f-00000002"}'
    assert bridge.settle(inbound("dt/aftercare/t-2/fault", good)) == [
        ("aftercare_fault_intake_test", Outcome.DELIVERED)
    ]
    (envelope,) = bodies(collect(sqs, queues["faults"], 1))
    assert base64.b64decode(envelope["payload_b64"]) == good
    assert collect(sqs, queues["dlq"], 1, timeout=0.5) == []


def test_a_rule_whose_error_action_is_refused_parks_directly(
    moto_endpoint, sqs, ddb, queues, parked_table
):
    bridge = in_process_bridge(moto_endpoint, sqs, ddb, queues, parked_table)
    # Given a rule whose action and error action both target a queue that does not exist
    # When a message matches it
    started = time.monotonic()
    outcomes = bridge.settle(inbound("dt/aftercare/t-3/broken", b"{}"))
    # Then it is parked directly with the reason, without the retries meant for outages
    assert outcomes == [("error_action_gone", Outcome.PARKED)]
    assert time.monotonic() - started < 3
    (item,) = DynamoParkedStore(table=parked_table, ddb=ddb).list()
    assert item["reason"] == "undeliverable:SqsAction"
    assert "NonExistentQueue" in item["detail"] and "ErrorAction" in json.dumps(item["envelope"])


def publish_all(port: int, protocol: MQTTProtocolVersion, payloads: list[bytes]) -> list[str]:
    """Publish at QoS 1 on one connection; what the client saw (acks, disconnects)."""
    seen: list[str] = []
    client = Client(
        CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}", protocol=protocol
    )
    client.on_publish = lambda _c, _u, mid, rc, _p: seen.append(f"puback {mid} {rc}")
    client.on_disconnect = lambda _c, _u, _f, rc, _p: seen.append(f"disconnect {rc}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish("dt/aftercare/ac-big-0001/fault", payload, qos=1)
            time.sleep(0.3)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


def test_the_broker_refuses_messages_over_iot_core_limit_and_intake_goes_on(
    bridge, broker, sqs, queues
):
    # Given faults of 300 KB and 1 MiB, over IoT Core's 128 KB, from an MQTT 3.1.1 device
    big = [b"a" * 300_000, b"b" * 1024 * 1024]
    good = json.dumps({"fault_id": "f-00000003"}).encode()
    # When it publishes them and then a good fault at QoS 1
    seen = publish_all(broker.port, MQTTProtocolVersion.MQTTv311, [*big, good])
    # Then MQTT 3.1.1 acknowledges all three (3.1.1 has no way to say "refused")
    assert [event.split()[0] for event in seen] == ["puback"] * 3 + ["disconnect"]
    # But the broker dropped the big ones: only the good fault reaches the fault queue
    envelopes = bodies(collect(sqs, queues["faults"], 1))
    assert [base64.b64decode(e["payload_b64"]) for e in envelopes] == [good]
    assert collect(sqs, queues["faults"], 1, timeout=1.0) == []
    assert collect(sqs, queues["dlq"], 1, timeout=0.5) == []


def test_an_mqtt5_device_is_told_packet_too_large_and_others_go_on(bridge, broker, sqs, queues):
    # Given an MQTT 5 device publishing a 300 KB fault
    seen = publish_all(broker.port, MQTTProtocolVersion.MQTTv5, [b"c" * 300_000])
    # Then mosquitto answers PUBACK 0x95 ("packet too large"), which MQTT 5 does not allow on a
    # PUBACK: paho 2.x calls it a protocol error and drops the connection
    assert "disconnect Protocol error" in seen
    # And another device's fault still goes through
    good = json.dumps({"fault_id": "f-00000004"}).encode()
    bridge_tests.publish(broker.port, [("dt/aftercare/ac-0001/fault", good)])
    (envelope,) = bodies(collect(sqs, queues["faults"], 1))
    assert base64.b64decode(envelope["payload_b64"]) == good
    assert MAX_MESSAGE_BYTES == 128 * 1024

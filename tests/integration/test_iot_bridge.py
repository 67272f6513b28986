"""The local IoT rules bridge: a real Mosquitto, a moto server and the bridge as a subprocess."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from aftercare.models.payloads import FaultEnvelope
from moto.server import ThreadedMotoServer
from paho.mqtt.client import Client, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.rule_actions import ActionFailed, LambdaAction
from infra.local.template import load_template
from tests.fakes.aws import use_fake_credentials
from tests.integration.children import Child, run_to_exit, start_child
from tests.integration.mosquitto_fixture import MosquittoBroker, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
BRIDGE_CLIENT_ID = "aftercare-iot-rules-test"


def template_fault_sql() -> str:
    template = load_template(ROOT / "template.yaml")
    return str(template.resources["FaultTopicRule"].properties["TopicRulePayload"]["Sql"])


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4()}", protocol=MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


# ---------------------------------------------------------------------------------------------
# Child processes and SQS helpers
# ---------------------------------------------------------------------------------------------
def start_bridge(spec_file: Path, log: Path) -> Child:
    bridge = start_child("infra.local.iotrule", spec_file, log, log_mode="a")
    assert bridge.ready_line == "READY", log.read_text()
    return bridge


def wait_for_log(child: Child, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in child.log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in {child.log}: {child.log.read_text()}"
        time.sleep(0.02)


def collect(sqs: Any, queue_url: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        received = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        for message in received:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages += received
        if not received:
            time.sleep(0.1)
    return messages


def bodies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in messages]


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    mosquitto = MosquittoBroker(workdir=tmp_path / "mosquitto")
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@dataclass
class Moto:
    """A moto server on a fixed port; its state lives in this process, so it survives restarts."""

    port: int
    server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    use_fake_credentials(monkeypatch)
    server = Moto(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto_endpoint(moto: Moto) -> str:
    return moto.endpoint


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def queues(sqs: Any, moto_endpoint: str) -> dict[str, str]:
    urls = {
        name: sqs.create_queue(QueueName=f"test-{name}")["QueueUrl"]
        for name in ("faults", "dlq", "raw", "errors")
    }
    urls["missing"] = f"{moto_endpoint}/123456789012/test-does-not-exist"
    return urls


def sqs_action(queue_url: str) -> dict[str, Any]:
    return {"type": "sqs", "queue_url": queue_url, "use_base64": False}


@pytest.fixture
def spec_file(
    tmp_path: Path, broker: MosquittoBroker, moto_endpoint: str, queues: dict[str, str]
) -> Path:
    spec = {
        "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
        "aws_endpoint_url": moto_endpoint,
        "region": REGION,
        "client_id": BRIDGE_CLIENT_ID,
        "rules": [
            {
                "name": "aftercare_fault_intake_test",
                "sql": template_fault_sql(),
                "actions": [sqs_action(queues["faults"])],
                "error_action": sqs_action(queues["dlq"]),
            },
            {
                "name": "raw_json",
                "sql": "SELECT *, topic(3) AS thing FROM 'dt/aftercare/+/raw'",
                "actions": [sqs_action(queues["raw"])],
                "error_action": sqs_action(queues["errors"]),
            },
            {
                "name": "broken_action",
                "sql": "SELECT topic() AS topic FROM 'dt/aftercare/+/broken'",
                "actions": [sqs_action(queues["missing"])],
                "error_action": sqs_action(queues["errors"]),
            },
        ],
    }
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
def bridge(spec_file: Path, tmp_path: Path) -> Iterator[Child]:
    running = start_bridge(spec_file, tmp_path / "bridge.log")
    yield running
    if running.process.poll() is None:
        running.stop()


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
def test_fault_reports_reach_the_fault_queue_as_envelopes(bridge, broker, sqs, queues):
    # Given a JSON fault report and a payload that is not JSON at all
    report = json.dumps({"fault_id": "f-00000001", "code": "FAN-STALL"}).encode()
    garbage = b"\xff\x00 not json {"
    before_ms = time.time_ns() // 1_000_000
    # When devices publish them on their fault topics
    publish(
        broker.port,
        [("dt/aftercare/ac-hp-0001/fault", report), ("dt/aftercare/ac-hp-0002/fault", garbage)],
    )
    # Then both reach the fault queue as FaultEnvelopes, thing and topic from the topic
    envelopes = sorted(bodies(collect(sqs, queues["faults"], 2)), key=lambda e: e["thing"])
    after_ms = time.time_ns() // 1_000_000
    assert [set(envelope) for envelope in envelopes] == [
        {"payload_b64", "thing", "received_at", "topic"}
    ] * 2
    assert [envelope["thing"] for envelope in envelopes] == ["ac-hp-0001", "ac-hp-0002"]
    assert envelopes[0]["topic"] == "dt/aftercare/ac-hp-0001/fault"
    assert base64.b64decode(envelopes[0]["payload_b64"]) == report
    assert base64.b64decode(envelopes[1]["payload_b64"]) == garbage
    assert all(before_ms <= envelope["received_at"] <= after_ms for envelope in envelopes)
    for envelope in envelopes:
        FaultEnvelope.model_validate(envelope)
    # And nothing was dead-lettered
    assert collect(sqs, queues["dlq"], 1, timeout=0.5) == []


def test_basic_ingest_goes_to_the_named_rule_alone_on_the_unprefixed_topic(
    bridge, broker, sqs, queues
):
    # Given reports sent by Basic Ingest: to the fault rule, to the raw rule on a topic its FROM
    # does not select, and to a rule that does not exist
    report = json.dumps({"fault_id": "f-00000002", "code": "FAN-STALL"}).encode()
    publish(
        broker.port,
        [
            ("$aws/rules/aftercare_fault_intake_test/dt/aftercare/ac-hp-0003/fault", report),
            ("$aws/rules/raw_json/dt/aftercare/ac-hp-0004/fault", b'{"n": 1}'),
            ("$aws/rules/no_such_rule/dt/aftercare/ac-hp-0005/fault", report),
        ],
    )
    # Then the fault rule made its envelope from the topic without the prefix (as in AWS, where
    # topic() and topic(k) never see it) ...
    (envelope,) = bodies(collect(sqs, queues["faults"], 1))
    assert envelope["thing"] == "ac-hp-0003"
    assert envelope["topic"] == "dt/aftercare/ac-hp-0003/fault"
    assert base64.b64decode(envelope["payload_b64"]) == report
    # ... the named rule ran whatever its FROM filter (Basic Ingest skips it), and only it
    assert bodies(collect(sqs, queues["raw"], 1)) == [{"n": 1, "thing": "ac-hp-0004"}]
    # ... and the report to no rule reached no queue (AWS logs RuleNotFound)
    assert collect(sqs, queues["faults"], 1, timeout=0.5) == []
    assert collect(sqs, queues["dlq"], 1, timeout=0.5) == []


def test_select_star_on_a_binary_payload_is_parked_by_the_error_action(bridge, broker, sqs, queues):
    # Given a rule selecting * (which needs JSON)
    binary = b"\x00\x01\x02 binary"
    # When one device publishes JSON and another binary
    publish(
        broker.port,
        [("dt/aftercare/t-1/raw", b'{"code": "E1"}'), ("dt/aftercare/t-2/raw", binary)],
    )
    # Then the JSON one is delivered, merged with the named item
    assert bodies(collect(sqs, queues["raw"], 1)) == [{"code": "E1", "thing": "t-1"}]
    # And the binary one lands in the error-action queue in AWS's error message shape
    (parked,) = bodies(collect(sqs, queues["errors"], 1))
    assert parked["ruleName"] == "raw_json"
    assert parked["topic"] == "dt/aftercare/t-2/raw"
    assert parked["clientId"] == ""
    uuid.UUID(parked["cloudwatchTraceId"])
    assert base64.b64decode(parked["base64OriginalPayload"]) == binary
    (failure,) = parked["failures"]
    assert failure["failedAction"] == "RuleEvaluation"
    assert failure["failedResource"] == "raw_json"
    assert "not valid JSON" in failure["errorMessage"]


def test_a_failing_sqs_action_is_parked_naming_the_queue(bridge, broker, sqs, queues):
    # Given a rule whose SQS action targets a queue that does not exist
    # When a message matches it
    publish(broker.port, [("dt/aftercare/t-1/broken", b"{}")])
    # Then the error action records an SqsAction failure for that queue
    (parked,) = bodies(collect(sqs, queues["errors"], 1))
    (failure,) = parked["failures"]
    assert failure["failedAction"] == "SqsAction"
    assert failure["failedResource"] == queues["missing"]
    assert "NonExistentQueue" in failure["errorMessage"]


def test_a_message_is_held_while_aws_is_unreachable_and_delivered_after(
    bridge, broker, moto, sqs, queues
):
    # Given the AWS endpoint goes away, so both the action and the error action fail
    moto.stop()
    # When a fault is published during the outage, and AWS comes back a little later
    publish(broker.port, [("dt/aftercare/t-9/fault", b'{"n": 9}')])
    # Back while the bridge waits out the 2 s backoff after its 3rd attempt, not at a fixed
    # time: an attempt is the action then the error action, each with botocore's own retries
    # (up to ~3 s), so no sleep lands between two attempts for sure; on a loaded machine moto
    # came back in the middle of one (action failed, error action succeeded: parked instead
    # of delivered). The bridge logs "retrying in 2.0s" just before that wait.
    wait_for_log(bridge, "retrying in 2.0s", timeout=60)
    moto.start()
    # Then the fault was neither acknowledged nor lost: it reaches the fault queue, not the DLQ
    envelopes = bodies(collect(sqs, queues["faults"], 1, timeout=30))
    assert [envelope["thing"] for envelope in envelopes] == ["t-9"]
    assert collect(sqs, queues["dlq"], 1, timeout=0.5) == []
    assert "retrying in" in bridge.log.read_text()


def test_messages_queued_while_bridge_and_broker_restart_are_delivered(
    bridge, broker, sqs, queues, spec_file, tmp_path
):
    # Given the bridge has a persistent session and is then stopped cleanly
    assert bridge.stop() == 0, bridge.log.read_text()
    # When faults are published while it is down, and the broker itself restarts
    reports = [(f"dt/aftercare/t-{n}/fault", json.dumps({"n": n}).encode()) for n in range(3)]
    publish(broker.port, reports)
    broker.stop()
    broker.start()
    restarted = start_bridge(spec_file, tmp_path / "bridge.log")
    try:
        # Then every queued fault is delivered once the bridge is back
        envelopes = bodies(collect(sqs, queues["faults"], 3))
        assert sorted(envelope["thing"] for envelope in envelopes) == ["t-0", "t-1", "t-2"]
    finally:
        assert restarted.stop() == 0, restarted.log.read_text()


def test_unsupported_sql_fails_fast_with_exit_code_2(tmp_path):
    # Given a rule using clientid(), which cannot be emulated
    spec = {
        "mqtt_url": "mqtt://127.0.0.1:1",
        "aws_endpoint_url": "http://127.0.0.1:1",
        "region": REGION,
        "client_id": "unused",
        "rules": [
            {
                "name": "who_sent_it",
                "sql": "SELECT clientid() AS c FROM 'dt/#'",
                "actions": [sqs_action("http://127.0.0.1:1/123456789012/q")],
            }
        ],
    }
    (tmp_path / "bridge.json").write_text(json.dumps(spec))
    # When the bridge starts
    result = run_to_exit("infra.local.iotrule", tmp_path / "bridge.json")
    # Then it exits 2 before connecting, naming the rule and the construct
    assert result.returncode == 2
    assert "rule who_sent_it" in result.stderr
    assert "clientid() cannot be emulated" in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------------
# The Lambda action
# ---------------------------------------------------------------------------------------------
class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []
    status: ClassVar[int] = 202

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "")
        self.received.append((self.path, invocation_type, json.loads(body)))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_worker() -> Iterator[tuple[str, type[_RecordingHandler]]]:
    handler = type("Handler", (_RecordingHandler,), {"received": [], "status": 202})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/invoke", handler
    server.shutdown()
    server.server_close()


def test_the_lambda_action_invokes_asynchronously(fake_worker):
    # Given a worker's invoke URL
    url, handler = fake_worker
    # When the Lambda action runs with a rule output
    LambdaAction(url, "arn:aws:lambda:us-east-1:123456789012:function:f").run({"thing": "t-1"})
    # Then the output was posted as an Event (asynchronous) invocation
    assert handler.received == [("/invoke", "Event", {"thing": "t-1"})]


def test_the_lambda_action_fails_when_the_invoke_is_refused(fake_worker):
    # Given a worker that answers with a server error, and one that is not there at all
    url, handler = fake_worker
    handler.status = 500
    action = LambdaAction(url, "arn:aws:lambda:us-east-1:123456789012:function:f")
    gone = LambdaAction(f"http://127.0.0.1:{free_port()}/invoke")
    # When each is run
    # Then each failure names the function, for the error action's failedResource
    with pytest.raises(ActionFailed, match="function:f: HTTP 500"):
        action.run({})
    with pytest.raises(ActionFailed, match=r"Failed to invoke http://127\.0\.0\.1"):
        gone.run({})
    assert action.resource.endswith(":function:f")

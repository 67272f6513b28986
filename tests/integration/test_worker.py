"""The local Lambda worker: a real subprocess against a moto server, with a tiny handler."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.local.lambda_runtime import Invocation
from infra.local.sqs_source import settle_batch
from tests.fakes.aws import use_fake_credentials
from tests.integration.children import Child, run_to_exit, start_child

pytestmark = pytest.mark.integration

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 2

HANDLER = textwrap.dedent(
    """
    import json
    import os
    from pathlib import Path

    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    from verdicts import is_bad  # from the layer

    logger = Logger()
    RECORDS = Path(os.environ["RECORDS_FILE"])


    def _append(entry):
        with RECORDS.open("a") as records:
            records.write(json.dumps(entry) + "\\n")


    @logger.inject_lambda_context
    def handler(event, context):
        if "Records" in event:
            SqsModel.model_validate(event)  # the exact Lambda SQS event shape
            failures = []
            for record in event["Records"]:
                if is_bad(record["body"]):
                    failures.append({"itemIdentifier": record["messageId"]})
                else:
                    _append({"kind": "sqs", "record": record})
            return {"batchItemFailures": failures}
        if event.get("detail-type") == "Scheduled Event":
            _append({"kind": "schedule", "event": event})
            return None
        if event.get("explode"):
            raise ValueError("boom")
        return {
            "echo": event,
            "function_name": context.function_name,
            "env_function_name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            "remaining_ms": context.get_remaining_time_in_millis(),
        }
    """
)

LAYER = "def is_bad(body):\n    return 'bad' in body\n"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def start_spec(module: str, spec: dict[str, Any], tmp_path: Path, name: str) -> Child:
    spec_file = tmp_path / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    return start_child(module, spec_file, tmp_path / f"{name}.log")


def eventually(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `check` until it holds; the timeout only bounds a failing run (20 s was too short
    for stream records on a loaded machine running the suite on several workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages"):
        messages += batch
    return messages


def queue_depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_fake_credentials(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def queues(sqs: Any) -> dict[str, str]:
    dlq_url = sqs.create_queue(QueueName="faults-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    url = sqs.create_queue(
        QueueName="faults",
        Attributes={"VisibilityTimeout": "60", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return {"url": url, "arn": arn, "dlq_url": dlq_url}


def write_function(tmp_path: Path) -> tuple[Path, Path]:
    code, layer = tmp_path / "code", tmp_path / "layer"
    code.mkdir()
    layer.mkdir()
    (code / "handler.py").write_text(HANDLER)
    (layer / "verdicts.py").write_text(LAYER)
    return code, layer


def worker_spec(tmp_path: Path, endpoint: str, queues: dict[str, str]) -> dict[str, Any]:
    code, layer = write_function(tmp_path)
    return {
        "logical_id": "FaultIntakeFunction",
        "function_name": "fault-intake-test",
        "code_uri": str(code),
        "layer_paths": [str(layer)],
        "handler": "handler.handler",
        "environment": {
            "RECORDS_FILE": str(tmp_path / "records.jsonl"),
            "POWERTOOLS_SERVICE_NAME": "worker-test",
        },
        "timeout": 5,
        "memory_size": 256,
        "region": REGION,
        "aws_endpoint_url": endpoint,
        "sqs_sources": [
            {
                "event_id": "Faults",
                "queue_url": queues["url"],
                "queue_arn": queues["arn"],
                "batch_size": 5,
                "max_batching_window_s": 0.2,
                "report_batch_item_failures": True,
            }
        ],
        "schedule_sources": [{"event_id": "Tick", "rate_seconds": 0.5}],
        "invoke_host": "127.0.0.1",
        "invoke_port": 0,
    }


def recorded(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    path = tmp_path / "records.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [entry for entry in entries if entry["kind"] == kind]


@pytest.fixture
def worker(tmp_path: Path, moto_endpoint: str, queues: dict[str, str]) -> Iterator[Child]:
    child = start_spec(
        "infra.local.worker", worker_spec(tmp_path, moto_endpoint, queues), tmp_path, "worker"
    )
    yield child
    if child.process.poll() is None:
        child.stop()


def invoke_url(child: Child) -> str:
    return json.loads(child.ready_line.removeprefix("READY "))["invoke_url"]


# ---------------------------------------------------------------------------------------------
# SQS event source
# ---------------------------------------------------------------------------------------------
def test_good_records_are_processed_and_deleted_exactly_once(worker, sqs, queues, tmp_path):
    # Given good messages on the queue, one with a message attribute
    bodies = [f"good-{n}" for n in range(7)]
    for body in bodies:
        sqs.send_message(
            QueueUrl=queues["url"],
            MessageBody=body,
            MessageAttributes={"source": {"DataType": "String", "StringValue": "test"}},
        )
    # When the worker has polled them
    eventually(lambda: len(recorded(tmp_path, "sqs")) >= len(bodies), what="good records")
    eventually(lambda: queue_depth(sqs, queues["url"]) == 0, what="an empty queue")
    time.sleep(1.5)  # longer than the retry backoff: a message not deleted would come back
    # Then each was handled once, on its first receive, and none is left or dead-lettered
    records = [entry["record"] for entry in recorded(tmp_path, "sqs")]
    assert sorted(record["body"] for record in records) == sorted(bodies)
    assert {record["attributes"]["ApproximateReceiveCount"] for record in records} == {"1"}
    assert queue_depth(sqs, queues["url"]) == 0
    assert drain(sqs, queues["dlq_url"]) == []
    # And the records have Lambda's SQS event shape
    record = records[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues["arn"]
    assert record["awsRegion"] == REGION
    assert record["messageAttributes"]["source"] == {
        "stringValue": "test",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )


def test_failed_records_are_retried_then_dead_lettered(worker, sqs, queues, tmp_path):
    # Given a batch mixing good and bad messages
    for body in ["good-a", "bad-1", "good-b", "bad-2"]:
        sqs.send_message(QueueUrl=queues["url"], MessageBody=body)
    # When the worker reports the bad ones as batch item failures, receive after receive
    dead: list[dict[str, Any]] = []

    def both_dead_lettered() -> bool:
        dead.extend(drain(sqs, queues["dlq_url"]))
        return len(dead) >= 2

    eventually(both_dead_lettered, timeout=30, what="the bad messages in the DLQ")
    # Then the bad ones end in the DLQ after maxReceiveCount receives, the good ones once each
    assert sorted(message["Body"] for message in dead) == ["bad-1", "bad-2"]
    good = [entry["record"]["body"] for entry in recorded(tmp_path, "sqs")]
    assert sorted(good) == ["good-a", "good-b"]
    assert queue_depth(sqs, queues["url"]) == 0
    assert "batch of" in worker.log.read_text()


# ---------------------------------------------------------------------------------------------
# Schedules and HTTP invoke
# ---------------------------------------------------------------------------------------------
def test_schedules_deliver_eventbridge_scheduled_events(worker, tmp_path):
    # Given a worker with a 0.5 s schedule
    # When some time passes
    eventually(lambda: len(recorded(tmp_path, "schedule")) >= 2, what="scheduled invocations")
    # Then the handler got EventBridge "Scheduled Event"s
    event = recorded(tmp_path, "schedule")[0]["event"]
    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/fault-intake-test-Tick"
    ]


def test_invoke_returns_the_handlers_result(worker):
    # Given a running worker
    # When its invoke URL is posted an event
    status, headers, body = post(invoke_url(worker), b'{"ping": 1}')
    # Then the result comes back, computed with the function's context and environment
    assert status == 200
    assert "X-Amz-Function-Error" not in headers
    assert body["echo"] == {"ping": 1}
    assert body["function_name"] == body["env_function_name"] == "fault-intake-test"
    assert 0 < body["remaining_ms"] <= 5000


def test_invoke_reports_a_handler_exception_like_lambda(worker):
    # Given a running worker
    # When the handler raises
    status, headers, body = post(invoke_url(worker), b'{"explode": true}')
    # Then Lambda's function-error response comes back
    assert status == 200
    assert headers["X-Amz-Function-Error"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom"
    assert body["stackTrace"]


def test_lambda_invoke_api_path_and_async_invocations_are_accepted(worker):
    # Given the Lambda Invoke API path for this function
    url = invoke_url(worker).replace(
        "/invoke", "/2015-03-31/functions/fault-intake-test/invocations"
    )
    # When invoked synchronously, asynchronously, and for another function
    sync_status, _, sync_body = post(url, b'{"ping": 2}')
    async_status, _, _ = post(url, b'{"ping": 3}', {"X-Amz-Invocation-Type": "Event"})
    missing_status, _, _ = post(url.replace("fault-intake-test", "other"), b"{}")
    # Then the function answers, accepts the event, and knows it is not the other function
    assert (sync_status, sync_body["echo"]) == (200, {"ping": 2})
    assert async_status == 202
    assert missing_status == 404


def test_invalid_json_is_a_client_error(worker):
    # Given a running worker
    # When the body is not JSON
    status, headers, _ = post(invoke_url(worker), b"{not json")
    # Then it is rejected without invoking
    assert status == 400
    assert headers["X-Amzn-ErrorType"] == "InvalidRequestContentException"


def test_sigterm_stops_the_worker_cleanly(worker):
    # Given a running worker
    # When it is sent SIGTERM
    code = worker.stop()
    # Then it exits 0
    assert code == 0, worker.log.read_text()


# ---------------------------------------------------------------------------------------------
# Start-up failures
# ---------------------------------------------------------------------------------------------
def test_a_handler_that_fails_to_import_exits_2_with_the_traceback(tmp_path):
    # Given a handler whose module raises at import
    code = tmp_path / "code"
    code.mkdir()
    (code / "handler.py").write_text("raise RuntimeError('missing TABLE_NAME')\n")
    spec = {
        "logical_id": "Broken",
        "function_name": "broken",
        "code_uri": str(code),
        "handler": "handler.handler",
        "timeout": 3,
        "memory_size": 128,
        "region": REGION,
        "aws_endpoint_url": "http://127.0.0.1:1",
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    # When the worker starts
    result = run_to_exit("infra.local.worker", tmp_path / "spec.json")
    # Then it exits 2 naming the handler and showing the traceback, and never says READY
    assert result.returncode == 2
    assert "cannot import module 'handler'" in result.stderr
    assert "RuntimeError: missing TABLE_NAME" in result.stderr
    assert "READY" not in result.stdout


def test_an_invalid_spec_exits_2(tmp_path):
    # Given a spec with a typo'd field
    (tmp_path / "spec.json").write_text(json.dumps({"logical_id": "X", "handlr": "h.h"}))
    # When the worker starts
    result = run_to_exit("infra.local.worker", tmp_path / "spec.json")
    # Then it exits 2 and names the problem
    assert result.returncode == 2
    assert "handlr" in result.stderr


# ---------------------------------------------------------------------------------------------
# Batch settlement rules (Lambda's ReportBatchItemFailures semantics)
# ---------------------------------------------------------------------------------------------
IDS = ["m-1", "m-2", "m-3"]


def returned(result: Any) -> Invocation:
    return Invocation("req", ok=True, result=result, error=None, duration_s=0.01)


@pytest.mark.parametrize(
    ("invocation", "report", "failed", "whole_batch"),
    [
        (Invocation("req", False, None, {"errorType": "E"}, 0.01), True, set(IDS), True),
        (returned({"batchItemFailures": [{"itemIdentifier": "m-2"}]}), True, {"m-2"}, False),
        (returned({"batchItemFailures": [{"itemIdentifier": "m-2"}]}), False, set(), False),
        (returned({"batchItemFailures": []}), True, set(), False),
        (returned({"batchItemFailures": None}), True, set(), False),
        (returned({}), True, set(), False),
        (returned(None), True, set(), False),
        (returned({"batchItemFailures": [{"itemIdentifier": ""}]}), True, set(IDS), True),
        (returned({"batchItemFailures": [{"itemIdentifier": None}]}), True, set(IDS), True),
        (returned({"batchItemFailures": [{"itemIdentifier": "nope"}]}), True, set(IDS), True),
        (returned({"batchItemFailures": [{"itemId": "m-1"}]}), True, set(IDS), True),
        (returned({"batchItemFailures": "m-1"}), True, set(IDS), True),
        (returned("ok"), True, set(IDS), True),
    ],
)
def test_batch_settlement(invocation, report, failed, whole_batch):
    # Given a handler outcome for a batch of three records
    # When the event source mapping settles it
    settlement = settle_batch(invocation, IDS, report)
    # Then exactly the expected records are retried, invalid responses failing the whole batch
    assert settlement.failed == failed
    assert (settlement.problem is not None) is whole_batch

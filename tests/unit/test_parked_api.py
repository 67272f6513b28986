"""Managers' parked messages: `GET /parked` and `POST /parked/replay` on moto (ParkedTable from
template.yaml, the intake queues on SQS), replaying through the same domain code as the CLI."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from aftercare.adapters.parked import DynamoParkedStore, SqsRedelivery
from aftercare.domain.ports import ParkedMessage
from aftercare.models.payloads import FaultEnvelope
from moto import mock_aws

from tests.fakes.aws import use_fake_credentials
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.fakes.tables import create_template_tables

API = load_handler("parked_api", "parked_api_handler")
NOW = datetime(2026, 11, 1, 8, tzinfo=UTC)
THING = "rt-x-0042"
MANAGER = {"token_use": "id", "sub": "m", "cognito:username": "mgr-grace",
           "cognito:groups": "[managers]"}  # fmt: skip
ENGINEER = {"token_use": "id", "sub": "e", "cognito:username": "eng-ada",
            "cognito:groups": "[engineers]"}  # fmt: skip
CUSTOMER = {"token_use": "id", "sub": "c", "cognito:username": "cust",
            "cognito:groups": "[customers]", "custom:customer_id": "c-0001"}  # fmt: skip


def fault_envelope(fault_id: str) -> dict[str, Any]:
    report = {"fault_id": fault_id, "code": "PSU-OVERVOLT", "occurred_at": NOW.isoformat()}
    return FaultEnvelope(
        payload_b64=base64.b64encode(json.dumps(report).encode()).decode(),
        thing=THING,
        received_at=int(NOW.timestamp() * 1000),
        topic=f"dt/aftercare/{THING}/fault",
    ).model_dump()


def parked(source: str, reason: str, message_id: str, minute: int) -> ParkedMessage:
    return ParkedMessage(
        source=source,
        reason=reason,
        detail="test",
        received_at=NOW.replace(minute=minute),
        payload="{}",
        thing=THING,
        envelope=fault_envelope(f"flt-{message_id}"),
        message_id=message_id,
    )


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    use_fake_credentials(monkeypatch)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        ddb, sqs = session.client("dynamodb"), session.client("sqs")
        create_template_tables(ddb, ("ParkedTable",))
        queue = sqs.create_queue(QueueName="faults")["QueueUrl"]
        archive = DynamoParkedStore(table="aftercare-parked-test", ddb=ddb)
        archive.park(parked("fault-dlq", "processing_failed_after_retries", "m-fail", 1))
        archive.park(parked("fault-intake", "schema_violation", "m-bad", 2))
        urls = {"FaultQueue": queue}
        redelivery = SqsRedelivery(queue_url=urls.__getitem__, sqs=sqs)
        deps = SimpleNamespace(archive=archive, redelivery=redelivery)
        monkeypatch.setattr(API, "deps", lambda: deps)
        yield SimpleNamespace(archive=archive, sqs=sqs, queue=queue, urls=urls)


def call(method: str, path: str, claims: dict[str, Any], body: Any = None) -> tuple[int, Any]:
    response = API.app.resolve(http_api_event(method, path, claims, body), None)
    return response["statusCode"], json.loads(response["body"])


def key_of(rows: list[dict[str, Any]], message_id: str) -> str:
    return next(r["parked_key"] for r in rows if r["parked_key"].endswith(message_id))


def test_a_manager_sees_what_was_parked_and_whether_a_replay_can_help(stack):
    status, rows = call("GET", "/parked", MANAGER)
    assert status == 200
    # newest first, each saying whether a replay would change anything
    assert [(r["source"], r["replayable"]) for r in rows] == [
        ("fault-intake", False),
        ("fault-dlq", True),
    ]
    assert "schema_violation" in rows[0]["why_not"] and rows[1]["why_not"] is None
    assert rows[1]["thing"] == THING and rows[1]["replay_count"] == 0


def test_the_list_narrows_by_source_and_reason(stack):
    assert [r["source"] for r in call("GET", "/parked?source=fault-dlq", MANAGER)[1]] == [
        "fault-dlq"
    ]
    assert [r["reason"] for r in call("GET", "/parked?reason=schema", MANAGER)[1]] == [
        "schema_violation"
    ]
    assert call("GET", "/parked?limit=1", MANAGER)[1][0]["source"] == "fault-intake"


def test_a_replay_goes_back_to_its_queue_and_stays_on_record(stack):
    # Given a fault whose processing failed after retries
    key = key_of(call("GET", "/parked", MANAGER)[1], "m-fail")
    # When a manager replays it
    status, outcome = call(
        "POST", "/parked/replay", MANAGER, {"source": "fault-dlq", "parked_key": key}
    )
    # Then its envelope is on the fault queue, and the parked item records who replayed it
    assert status == 200 and outcome["outcome"] == "replayed"
    assert outcome["queue"] == "FaultQueue"
    (message,) = stack.sqs.receive_message(QueueUrl=stack.queue)["Messages"]
    assert FaultEnvelope.model_validate_json(message["Body"]).thing == THING
    row = next(r for r in call("GET", "/parked", MANAGER)[1] if r["parked_key"] == key)
    assert row["replay_count"] == 1 and row["replayed_by"] == "user:mgr-grace"
    assert row["replay_outcome"] == "sent to FaultQueue"
    # And naming it again replays it again (intake counts a fault once)
    again = call("POST", "/parked/replay", MANAGER, {"source": "fault-dlq", "parked_key": key})
    assert again[0] == 200


def test_a_message_a_replay_cannot_fix_is_refused_with_why(stack):
    key = key_of(call("GET", "/parked", MANAGER)[1], "m-bad")
    status, body = call(
        "POST", "/parked/replay", MANAGER, {"source": "fault-intake", "parked_key": key}
    )
    assert status == 409 and body["reason"] == "not_replayable"
    assert "schema_violation" in body["message"]
    assert "Messages" not in stack.sqs.receive_message(QueueUrl=stack.queue)


def test_an_unknown_key_is_not_found(stack):
    status, body = call(
        "POST", "/parked/replay", MANAGER, {"source": "fault-dlq", "parked_key": "nope#x"}
    )
    assert status == 404 and body["reason"] == "not_found"


def test_a_queue_that_does_not_take_it_is_a_502_and_recorded(stack):
    key = key_of(call("GET", "/parked", MANAGER)[1], "m-fail")
    stack.urls["FaultQueue"] = stack.queue + "-gone"
    status, body = call(
        "POST", "/parked/replay", MANAGER, {"source": "fault-dlq", "parked_key": key}
    )
    assert status == 502 and body["reason"] == "replay_failed"
    row = stack.archive.get("fault-dlq", key)
    assert row is not None and str(row["replay_outcome"]).startswith("failed")


@pytest.mark.parametrize("claims", [ENGINEER, CUSTOMER])
def test_only_managers_see_or_replay_parked_messages(stack, claims):
    assert call("GET", "/parked", claims)[0] == 403
    status, body = call(
        "POST", "/parked/replay", claims, {"source": "fault-dlq", "parked_key": "k#1"}
    )
    assert (status, body["reason"]) == (403, "forbidden")
    assert "only managers" in body["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"source": "fault-dlq"},
        {"source": "Fault DLQ", "parked_key": "k#1"},
        {"source": "fault-dlq", "parked_key": "k#1", "extra": 1},
    ],
)
def test_a_malformed_replay_request_is_a_422(stack, body):
    status, answer = call("POST", "/parked/replay", MANAGER, body)
    assert status == 422 and answer["reason"]

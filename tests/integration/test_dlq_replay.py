"""`aftercare dlq replay` (finding 4 of "Nothing lost, nothing leaked"): each parked message goes
back only to where it came from, only when a replay can fix it, and stays parked with its
history; replaying twice cannot count twice. Runs the CLI command and the real handlers on moto
with the template's tables and queues."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.domain.ports import ParkedMessage
from aftercare.models.payloads import DiagnosticsEnvelope, FaultEnvelope

from infra import cli
from infra.cli_core import StackOptions
from infra.target import Target
from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.integration.intake_stack import (
    NOW,
    THING,
    invoke,
    record,
    report,
    sqs_record,
    store,
)


def fault_envelope(fault_id: str) -> dict[str, Any]:
    return json.loads(record(report(fault_id))["body"])


def answer_envelope(thing: str) -> dict[str, Any]:
    payload = {"request_id": "T-X_abcdef12", "status": "passed", "completed_at": NOW.isoformat()}
    return DiagnosticsEnvelope(
        payload_b64=base64.b64encode(json.dumps(payload).encode()).decode(),
        thing=thing,
        received_at=int(NOW.timestamp() * 1000),
        topic=f"cmd/aftercare/{thing}/diagnostics/res",
    ).model_dump()


def park(aws: dict[str, Any], source: str, reason: str, envelope: dict[str, Any], mid: str) -> None:
    DynamoParkedStore(table=aws["resources"]["ParkedTable"], ddb=aws["ddb"]).park(
        ParkedMessage(
            source=source,
            reason=reason,
            detail="test",
            received_at=NOW,
            payload="{}",
            thing=envelope.get("thing"),
            envelope=envelope,
            message_id=mid,
        )
    )


@pytest.fixture
def target(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Target:
    stack = Target(resources=aws["resources"], region="us-east-1")
    monkeypatch.setattr(StackOptions, "target", lambda opts: stack)
    return stack


def replay(capsys: pytest.CaptureFixture[str], *keys: str) -> list[dict[str, Any]]:
    argv = ["dlq", "replay", "--json", "--by", "ops-ada", *(keys or ["--all"])]
    assert cli.main(argv) == 0
    return list(json.loads(capsys.readouterr().out))


def drain(target: Target, queue: str) -> list[dict[str, Any]]:
    url = target.queue_url(queue)
    messages = target.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return messages.get("Messages", [])


def parked_by_key(aws: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items = DynamoParkedStore(table=aws["resources"]["ParkedTable"], ddb=aws["ddb"]).list()
    return {str(i["message_id"]): i for i in items}


def test_replay_goes_back_to_the_source_and_keeps_the_evidence(aws, intake, target, capsys):
    # Given parked: a fault whose processing failed, a diagnostics answer whose processing
    # failed, a spoofed answer, a schema violation, and a rule error from the fault rule
    park(aws, "fault-dlq", "processing_failed_after_retries", fault_envelope("rep-0001"), "m1")
    park(aws, "diagnostics-dlq", "processing_failed_after_retries", answer_envelope(THING), "m2")
    park(aws, "diagnostics", "thing_mismatch", answer_envelope("ac-hp-0008"), "m3")
    park(aws, "fault-intake", "schema_violation", fault_envelope("bad-0001"), "m4")
    raw = json.dumps(report("rule-0001")).encode()
    rule_error = {
        "ruleName": "aftercare_fault_intake_local",
        "topic": f"dt/aftercare/{THING}/fault",
        "base64OriginalPayload": base64.b64encode(raw).decode(),
        "failures": [{"failedAction": "SqsAction", "failedResource": "q", "errorMessage": "x"}],
    }
    park(aws, "fault-dlq", "rule_error:SqsAction", rule_error, "m5")
    # When an operator replays everything
    rows = {row["parked_key"].split("#")[1]: row for row in replay(capsys)}
    # Then only what a replay can fix went, each to its own queue; the rest say why not
    assert {k: r["outcome"] for k, r in rows.items()} == {
        "m1": "replayed",
        "m2": "replayed",
        "m3": "skipped",
        "m4": "skipped",
        "m5": "replayed",
    }
    assert "thing_mismatch" in rows["m3"]["why"] and "schema_violation" in rows["m4"]["why"]
    faults = [json.loads(m["Body"]) for m in drain(target, "FaultQueue")]
    answers = [json.loads(m["Body"]) for m in drain(target, "DiagnosticsResultQueue")]
    assert sorted(FaultEnvelope.model_validate(f).thing for f in faults) == [THING, THING]
    assert [a["topic"] for a in answers] == [f"cmd/aftercare/{THING}/diagnostics/res"]
    # And every parked item is still there; the replayed ones carry their history
    items = parked_by_key(aws)
    assert set(items) == {"m1", "m2", "m3", "m4", "m5"}
    assert items["m1"]["replay_count"] == 1 and items["m1"]["replayed_by"] == "ops-ada"
    assert items["m1"]["replay_outcome"] == "sent to FaultQueue"
    assert "replay_count" not in items["m3"]
    # And a second `--all` replays nothing again
    again = replay(capsys)
    assert [r["outcome"] for r in again] == ["skipped"] * 5


def test_replaying_the_same_fault_twice_counts_once(aws, intake, target, capsys):
    # Given a fault that was dead-lettered after its processing failed
    park(aws, "fault-dlq", "processing_failed_after_retries", fault_envelope("twice-0001"), "m1")
    key = next(iter(parked_by_key(aws).values()))["parked_key"]
    # When it is replayed twice by key, and FaultIntake processes both copies
    replay(capsys, key)
    replay(capsys, key)
    copies = drain(target, "FaultQueue")
    assert len(copies) == 2
    response = invoke(intake, *(sqs_record(m["Body"]) for m in copies))
    # Then one ticket with one occurrence exists, and the item shows both replays
    assert response == {"batchItemFailures": []}
    (ticket,) = store(aws).list_tickets(thing=THING)
    assert ticket.occurrences == 1
    (item,) = parked_by_key(aws).values()
    assert item["replay_count"] == 2 and len(item["replays"]) == 2


def test_dead_letter_recorder_items_replay_as_recorded(aws, target, capsys):
    # Given a fault message the recorder parked after its retries ran out
    recorder = load_handler("dead_letter_recorder")
    recorder.deps.cache_clear()
    letter = record(report("dlr-0001"))
    letter["attributes"]["ApproximateReceiveCount"] = "6"
    recorder.handler({"Records": [letter]}, FakeContext())
    capsys.readouterr()  # the recorder's metrics
    # When it is replayed
    (row,) = replay(capsys)
    # Then the fault queue gets the original envelope back
    assert row["outcome"] == "replayed"
    (message,) = drain(target, "FaultQueue")
    assert json.loads(message["Body"]) == json.loads(letter["body"])


def test_an_envelope_kept_in_the_bucket_is_replayed_in_full(aws, target, capsys):
    # Given a rule error whose envelope is too big for its parked item (kept in the bucket)
    recorder = load_handler("dead_letter_recorder")
    recorder.deps.cache_clear()
    original = json.dumps({**report("big-rule-01"), "message": "m" * 300_000}).encode()
    rule_error = {
        "ruleName": "aftercare_fault_intake_local",
        "topic": f"dt/aftercare/{THING}/fault",
        "base64OriginalPayload": base64.b64encode(original).decode(),
        "failures": [{"failedAction": "SqsAction", "failedResource": "q", "errorMessage": "x"}],
    }
    recorder.handler({"Records": [sqs_record(json.dumps(rule_error))]}, FakeContext())
    capsys.readouterr()
    (item,) = parked_by_key(aws).values()
    assert item["envelope_ref"].startswith("s3://") and "envelope" not in item
    # When it is replayed
    (row,) = replay(capsys)
    # Then the fault queue gets the envelope the rule would have sent, with the whole payload
    assert row["outcome"] == "replayed"
    (message,) = drain(target, "FaultQueue")
    envelope = FaultEnvelope.model_validate_json(message["Body"])
    assert base64.b64decode(envelope.payload_b64) == original and envelope.thing == THING

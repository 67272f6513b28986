"""Oversized and hostile input is parked once, in an item DynamoDB accepts (moto enforces the
400 KB item limit), by the real FaultIntake and DeadLetterRecorder handlers: findings 1 and 3
of "Nothing lost, nothing leaked"."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import boto3
import pytest

from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.integration.intake_stack import (
    THING,
    invoke,
    parked,
    record,
    report,
    sqs_record,
    store,
)

DYNAMODB_ITEM_LIMIT = 400 * 1024


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(k) + len(json.dumps(v, default=str)) for k, v in item.items())


@pytest.mark.parametrize("size", [295_000, 786_000])
def test_oversized_fault_is_parked_once_with_a_bounded_item(intake, aws, size):
    # Given a fault payload far over the contract's 16 KiB (as hand-sent to the queue: the
    # broker refuses anything over 128 KB)
    payload = json.dumps({**report("big-0001"), "message": "x" * size}).encode()
    # When FaultIntake takes it, next to a good report
    response = invoke(intake, record(payload), record(report("good-0001")))
    # Then nothing is retried, the good one opened a ticket, the big one is parked once
    assert response == {"batchItemFailures": []}
    assert len(store(aws).list_tickets(thing=THING)) == 1
    (item,) = parked(aws)
    assert item["reason"] == "payload_too_large"
    # And the item is bounded, with the digest and size of what was sent
    assert item_bytes(item) < DYNAMODB_ITEM_LIMIT
    assert item["payload_bytes"] == len(payload)
    assert item["payload_sha256"] == hashlib.sha256(payload).hexdigest()


def test_dead_letter_recorder_never_fails_on_a_big_message(aws):
    recorder = load_handler("dead_letter_recorder")
    recorder.deps.cache_clear()
    original = b"y" * 700_000  # base64 is 933 KB: just under SQS's 1 MiB
    rule_error = {
        "ruleName": "aftercare_fault_intake_local",
        "topic": f"dt/aftercare/{THING}/fault",
        "base64OriginalPayload": base64.b64encode(original).decode(),
        "failures": [{"failedAction": "SqsAction", "failedResource": "q", "errorMessage": "big"}],
    }
    exhausted = json.loads(record(b"z" * 700_000)["body"])
    letters = [
        sqs_record(json.dumps(rule_error)),
        sqs_record(json.dumps(exhausted)),
        sqs_record("[" * 10_000 + "]" * 10_000),
        sqs_record('{"failures": "not a list", "payload_b64": 7, "thing": []}'),
    ]
    # When the recorder runs on them
    response = recorder.handler({"Records": letters}, FakeContext())
    # Then none fails and each is parked in a bounded item
    assert response == {"batchItemFailures": []}
    items = parked(aws)
    assert sorted(p["reason"] for p in items) == [
        "processing_failed_after_retries",
        "processing_failed_after_retries",
        "rule_error:SqsAction",
        "unrecognised_dead_letter",
    ]
    assert all(item_bytes(p) < DYNAMODB_ITEM_LIMIT for p in items)
    rule = next(p for p in items if p["reason"] == "rule_error:SqsAction")
    assert rule["payload_sha256"] == hashlib.sha256(original).hexdigest()
    # And its full envelope (too big for an item) was kept in the ParkedPayloadBucket
    assert "envelope" not in rule and "envelope_omitted" not in rule
    bucket, _, key = rule["envelope_ref"].removeprefix("s3://").partition("/")
    assert bucket == aws["resources"]["ParkedPayloadBucket"]
    kept = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert kept == rule_error


def test_hostile_content_is_counted_as_fault_rejected(intake, aws, capsys):
    text = json.dumps(report("nan-0001")).replace('"rpm": 0', '"rpm": NaN').encode()
    response = invoke(intake, record(text))
    assert response == {"batchItemFailures": []}
    assert [p["reason"] for p in parked(aws)] == ["malformed_json"]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    rejected = [m for m in metrics if "FaultRejected" in m]
    assert [m["reason"] for m in rejected] == ["malformed_json"]

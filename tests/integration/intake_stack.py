"""The FaultIntake and DeadLetterRecorder stack on moto, shared by the intake, parking and
replay tests: what goes in (reports, queue records) and what they read back (tickets, parked
messages). The `aws` and `intake` fixtures are in this folder's conftest.py."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.parked import DynamoParkedStore

from tests.fakes.lambda_runtime import FakeContext
from tests.fakes.tables import ticket_store

NOW = datetime.now(UTC).replace(microsecond=0)
THING = "ac-hp-0004"


def report(fault_id: str, code: str = "FAN-STALL", **extra: Any) -> dict[str, Any]:
    return {
        "fault_id": fault_id,
        "code": code,
        "occurred_at": (NOW - timedelta(seconds=3)).isoformat(),
        "firmware": "3.1.0",
        "readings": {"rpm": 0, "temp_c": 70.5},
        **extra,
    }


def record(payload: Any, thing: str = THING, at: datetime = NOW) -> dict[str, Any]:
    """The fault queue's record for a device's payload (JSON-encoded unless bytes)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    body = {
        "payload_b64": base64.b64encode(raw).decode(),
        "thing": thing,
        "received_at": int(at.timestamp() * 1000),
        "topic": f"dt/aftercare/{thing}/fault",
    }
    return sqs_record(json.dumps(body))


def sqs_record(body: str) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(NOW.timestamp() * 1000)),
            "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": str(int(NOW.timestamp() * 1000)),
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:aftercare-faults-local",
        "awsRegion": "us-east-1",
    }


def invoke(module: ModuleType, *records: dict[str, Any]) -> dict[str, Any]:
    return module.handler({"Records": list(records)}, FakeContext())


def store(aws: dict[str, Any]) -> DynamoTicketStore:
    return ticket_store(aws["resources"], aws["ddb"])


def parked(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return DynamoParkedStore(table=aws["resources"]["ParkedTable"], ddb=aws["ddb"]).list()

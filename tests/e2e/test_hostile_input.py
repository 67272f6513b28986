"""Nothing lost, nothing leaked, end to end: oversized messages are refused at the broker (as
IoT Core refuses them), hostile JSON is parked once with its reason, and the faults around them
open their tickets."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from infra.seeding import demo_devices
from tests.e2e.conftest import Stack, publish_as, settle, wait_for

DEVICES = demo_devices()


def opened(stack: Stack, thing: str) -> list:
    return [t for t in stack.tickets.list_tickets(thing=thing) if t.fault_code == "E2E-HOSTILE"]


def test_oversized_and_hostile_faults_never_stall_intake(local_stack: Stack) -> None:
    thing = DEVICES[6].thing
    now = datetime.now(UTC).isoformat()
    topic = f"dt/aftercare/{thing}/fault"

    def fault(fault_id: str, rpm: str = "0", occurred_at: str | None = None) -> str:
        stamp = occurred_at or json.dumps(now)
        return (
            f'{{"fault_id": "{fault_id}", "code": "E2E-HOSTILE", "occurred_at": {stamp},'
            f' "firmware": "1", "readings": {{"rpm": {rpm}}}}}'
        )

    hostile = {
        "hostile-nan01": fault("hostile-nan01", rpm="NaN"),
        "hostile-big01": fault("hostile-big01", rpm="9" * 4301),
        "hostile-huge1": fault("hostile-huge1", rpm="1e300"),
        "hostile-deep1": "[" * 8000 + "]" * 8000,
        "hostile-epoch": fault("hostile-epoch", occurred_at=str(int(time.time()))),
    }
    # Given 300 KB and 1 MiB faults, hostile JSON, and a valid fault after all of them
    messages = [
        {"topic": topic, "payload": b"a" * 300_000, "qos": 1},
        {"topic": topic, "payload": b"b" * 1024 * 1024, "qos": 1},
        *({"topic": topic, "payload": text, "qos": 1} for text in hostile.values()),
        {"topic": topic, "payload": fault("valid-after1"), "qos": 1},
    ]
    before = {p["parked_key"] for p in local_stack.parked.list()}
    # When one device publishes them (MQTT 3.1.1, QoS 1)
    publish_as(local_stack.state, thing, messages)
    # Then the valid fault opened its ticket
    wait_for(lambda: opened(local_stack, thing), timeout=60, what="the valid fault's ticket")
    settle(local_stack)
    (ticket,) = opened(local_stack, thing)
    assert ticket.opened_by_fault == "valid-after1"
    # And each hostile one is parked exactly once with a content reason, none as a retry
    new = [p for p in local_stack.parked.list() if p["parked_key"] not in before]
    try:
        reasons = sorted(p["reason"] for p in new if p.get("thing") == thing)
        assert reasons == ["malformed_json"] * 2 + ["schema_violation"] * 3
        # And the oversized ones never entered: refused at the broker, nothing parked for them
        assert all(p["payload_bytes"] < 128 * 1024 for p in new)
    finally:
        forget(local_stack, new)


def forget(stack: Stack, parked: list[dict]) -> None:
    """Leave the shared stack's ParkedTable as this test found it (other tests read it)."""
    ddb = stack.target.client("dynamodb")
    for item in parked:
        key = {"source": {"S": item["source"]}, "parked_key": {"S": item["parked_key"]}}
        ddb.delete_item(TableName=stack.target.resource("ParkedTable"), Key=key)

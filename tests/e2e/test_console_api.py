"""The routes the web console needs, end to end on the shared local stack: real Cognito ID
tokens through the local HTTP API gateway, devices publishing over Mosquitto.

Devices (no other shared-stack test uses them): ev-ch-0002 (c-0002), and `console-ghost-01`,
an IoT thing Aftercare's registry does not know (its faults are parked `unknown_device`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from infra.cli import main as cli_main
from tests.e2e.api_user import ApiUser
from tests.e2e.conftest import Stack, publish_as, wait_for

THING = "ev-ch-0002"
GHOST = "console-ghost-01"
TIMEOUT = 120.0  # a loaded 2-core machine: telemetry batches wait for their window


def fault(thing: str, code: str = "PSU-OVERVOLT") -> dict[str, object]:
    body = {
        "fault_id": f"console-{uuid.uuid4().hex[:12]}",
        "code": code,
        "occurred_at": datetime.now(UTC).isoformat(),
        "firmware": "3.1.0",
    }
    return {"topic": f"dt/aftercare/{thing}/fault", "payload": json.dumps(body), "qos": 1}


def ids(rows: list[dict[str, object]]) -> set[object]:
    return {r["ticket_id"] for r in rows}


def test_the_ticket_queue_narrows_and_polls_and_the_device_chart_has_readings(
    local_stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    engineer = ApiUser(local_stack, "eng-ada")
    owner, other = ApiUser(local_stack, "cust-0002"), ApiUser(local_stack, "cust-0001")
    since = quote((datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    # Given c-0002's charger reports a fault and its telemetry over MQTT
    telemetry = {"firmware": "3.1.0", "uptime_s": 3600, "sent_at": datetime.now(UTC).isoformat()}
    publish_as(
        local_stack.state,
        THING,
        [
            fault(THING),
            {
                "topic": f"dt/aftercare/{THING}/telemetry",
                "payload": json.dumps({**telemetry, "temp_c": 41.5}),
                "qos": 1,
            },
        ],
    )
    (ticket,) = wait_for(
        lambda: engineer.get(f"/tickets?thing={THING}&updated_since={since}"),
        timeout=TIMEOUT,
        what="the fault's ticket in the engineer's queue",
    )
    # When the engineer's queue is narrowed to its priority and region, and polls for changes
    region = engineer.get(f"/tickets/{ticket['ticket_id']}")["region"]
    narrowed = f"/tickets?priority={ticket['priority']}&region={region}&status={ticket['status']}"
    # Then the ticket is in the narrowed queue and in what changed since before it opened
    assert ticket["ticket_id"] in ids(engineer.get(narrowed))
    assert ticket["ticket_id"] in ids(engineer.get(f"/tickets?updated_since={since}"))
    due = quote(ticket["opened_at"])
    assert ticket["ticket_id"] not in ids(engineer.get(f"/tickets?sla_due_before={due}"))
    other_priority = "P4" if ticket["priority"] != "P4" else "P3"
    assert ticket["ticket_id"] not in ids(engineer.get(f"/tickets?priority={other_priority}"))
    # And the owner sees it in their queue, another customer does not
    assert ticket["ticket_id"] in ids(owner.get(f"/tickets?updated_since={since}"))
    assert ticket["ticket_id"] not in ids(other.get("/tickets?limit=200"))
    # And the CLI's direct read of the ticket (no login: DynamoDB) is the API's view, field
    # for field
    assert_cli_shows_what_the_api_shows(local_stack, engineer, str(ticket["ticket_id"]), capsys)
    # And a time without an offset is refused with a reason
    status, body = engineer.call("GET", "/tickets?updated_since=2026-11-01T10:00:00")
    assert status == 422 and body["reason"]
    # And the device page's chart has the reading, for staff and the owner only
    chart = wait_for(
        lambda: (c := engineer.get(f"/devices/{THING}/telemetry"))["latest"] and c,
        timeout=TIMEOUT,
        what="the telemetry folded into the device's health",
    )
    assert chart["latest"]["temp_c"] == 41.5 and chart["daily"][-1]["temp_c_mean"] == 41.5
    assert owner.get(f"/devices/{THING}/telemetry")["latest"]["temp_c"] == 41.5
    status, body = other.call("GET", f"/devices/{THING}/telemetry")
    assert (status, body["reason"]) == (404, "not_found")


def test_a_manager_replays_a_parked_fault_and_lists_follow_ups(local_stack: Stack) -> None:
    manager, engineer = ApiUser(local_stack, "mgr-grace"), ApiUser(local_stack, "eng-ada")
    # Given a fault from a thing the registry does not know yet, and a malformed one
    publish_as(
        local_stack.state,
        GHOST,
        [fault(GHOST), {"topic": f"dt/aftercare/{GHOST}/fault", "payload": "{nope", "qos": 1}],
    )

    def parked_from_ghost() -> dict[str, dict[str, object]]:
        rows = manager.get("/parked?limit=500")
        found = {str(r["reason"]): r for r in rows if r.get("thing") == GHOST}
        return found if {"unknown_device", "malformed_json"} <= set(found) else {}

    found = wait_for(parked_from_ghost, timeout=TIMEOUT, what="both faults parked")
    unknown, malformed = found["unknown_device"], found["malformed_json"]
    assert unknown["replayable"] is True and malformed["replayable"] is False
    # When the manager replays each
    key = {"source": unknown["source"], "parked_key": unknown["parked_key"]}
    status, outcome = manager.call("POST", "/parked/replay", key)
    refused = manager.call(
        "POST",
        "/parked/replay",
        {"source": malformed["source"], "parked_key": malformed["parked_key"]},
    )
    # Then the unknown device's fault went back to the fault queue, and the history says who
    assert status == 200 and (outcome["outcome"], outcome["queue"]) == ("replayed", "FaultQueue")
    replayed = next(
        r for r in manager.get("/parked?limit=500") if r["parked_key"] == key["parked_key"]
    )
    assert replayed["replay_count"] == 1 and replayed["replayed_by"] == "user:mgr-grace"
    # And the malformed one is refused with why; engineers may do neither
    assert refused[0] == 409 and refused[1]["reason"] == "not_replayable"
    assert engineer.call("GET", "/parked")[0] == 403
    assert engineer.call("POST", "/parked/replay", key)[0] == 403
    # And the follow-ups of low survey ratings are the managers' list
    status, follow_ups = manager.call("GET", "/followups?limit=10")
    assert status == 200 and isinstance(follow_ups, list)
    assert engineer.call("GET", "/followups")[0] == 403


def assert_cli_shows_what_the_api_shows(
    stack: Stack, user: ApiUser, ticket_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = stack.stack.state_dir
    assert not (state_dir / "session.json").exists(), "a login would send the CLI to the API"
    capsys.readouterr()
    assert cli_main(["tickets", "show", ticket_id, "--json", "--state-dir", str(state_dir)]) == 0
    direct = json.loads(capsys.readouterr().out)
    api = user.get(f"/tickets/{ticket_id}")
    assert set(direct) == set(api)
    assert set(direct["estimate"]) == set(api["estimate"])
    for name in ("ticket_id", "thing", "fault_code", "customer_id", "opened_at", "estimate"):
        assert direct[name] == api[name], name
    # The diagnostics the ticket had when the CLI read it are in the API's answer (read after)
    assert {d["request_id"] for d in direct["diagnostics"]} <= {
        d["request_id"] for d in api["diagnostics"]
    }

"""Tickets people raise, end to end on the shared local stack: real Cognito ID tokens, the local
HTTP API gateway, the TicketsTable stream's notifier and AutoDiagnose, and a device agent over
Mosquitto answering the auto-diagnostic a customer's ticket started.

Devices (no other shared-stack test uses them): rt-x-0161 (c-0001), ev-ch-0162 (c-0002),
ic-300-0163 (c-0003), ic-300-0167 (c-0007, VIP).
"""

from __future__ import annotations

import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aftercare.adapters.notification_reports import NotificationReports

from devices.agent import DeviceAgent
from infra.cli import main as cli_main
from tests.e2e.api_user import ApiUser
from tests.e2e.conftest import Stack, device_agent_config, wait_for
from tests.e2e.fuzzing import api_operations, server_errors


def new_key() -> str:
    return f"e2e-{uuid.uuid4().hex}"


def test_a_customer_raises_a_ticket_that_notifies_and_diagnoses_the_device(
    local_stack: Stack, tmp_path: Path
) -> None:
    # Given c-0001's router online (a device agent that answers diagnostics)
    agent = DeviceAgent(device_agent_config(local_stack.state, "rt-x-0161", tmp_path / "outbox"))
    assert agent.start(connect_timeout=10)
    customer = ApiUser(local_stack, "cust-0001")
    try:
        # When the customer raises a stalled fan from the app, and the app retries
        key = new_key()
        body = {"device": "rt-x-0161", "symptom": "FAN-STALL", "channel": "app"}
        status, opened = customer.raise_ticket(key, **body, description="fan is silent")
        assert (status, opened["outcome"]) == (201, "opened"), opened
        status, retried = customer.raise_ticket(key, **body, description="fan is silent")
        # Then the retry is the same ticket, and the ticket says who raised it where
        assert (status, retried["outcome"]) == (200, "duplicate_request")
        ticket_id = opened["ticket_id"]
        assert retried["ticket_id"] == ticket_id
        status, shown = customer.call("GET", f"/tickets/{ticket_id}")
        assert status == 200 and shown["channel"] == "app"
        assert shown["raised_by"] == "customer:c-0001"
        assert shown["timeline"][0]["kind"] == "opened"
        # And the auto-diagnostic reached the device over MQTT and came back answered
        wait_for(
            lambda: [
                d
                for d in customer.call("GET", f"/tickets/{ticket_id}/diagnostics")[1]["diagnostics"]
                if d["purpose"] == "auto" and d["status"] == "completed"
            ],
            timeout=60,
            what="the auto-diagnostic answered by the device",
        )
        # And the customer was told the ticket is open
        reports = NotificationReports(
            table=local_stack.target.resource("NotificationsTable"),
            ddb=local_stack.target.client("dynamodb"),
        )
        wait_for(
            lambda: [
                a
                for a in reports.list_attempts(ticket_id=ticket_id)
                if a.get("kind") == "ticket_opened"
            ],
            timeout=60,
            what="the ticket-opened notification",
        )
        # When the customer reports the same symptom again (no key)
        status, again = customer.raise_ticket(**body)
        # Then it is already being handled, on the same ticket
        assert (status, again["outcome"], again["ticket_id"]) == (
            200,
            "already_being_handled",
            ticket_id,
        )
        assert again["ticket"]["occurrences"] == 2
    finally:
        agent.stop(drain_timeout=2)


def test_twenty_concurrent_retries_with_one_key_make_one_ticket(local_stack: Stack) -> None:
    customer = ApiUser(local_stack, "cust-0002")
    key = new_key()
    body = {"device": "ev-ch-0162", "symptom": "TEMP-HIGH", "channel": "web"}

    def attempt(_: int) -> tuple[int, Any]:
        return customer.raise_ticket(key, **body)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(attempt, range(20)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 19 + [201], answers
    assert len({answer["ticket_id"] for _, answer in answers}) == 1
    tickets = local_stack.tickets.list_tickets(thing="ev-ch-0162")
    assert len([t for t in tickets if t.fault_code == "TEMP-HIGH"]) == 1
    # And the key with another body is refused
    status, refused = customer.raise_ticket(key, **(body | {"symptom": "PSU-OVERVOLT"}))
    assert (status, refused["reason"]) == (409, "idempotency_key_reused")


def test_free_text_is_unclassified_until_an_agent_classifies_it(local_stack: Stack) -> None:
    customer = ApiUser(local_stack, "cust-0003")
    body = {"device": "ic-300-0163", "symptom": "it clicks and then shuts off", "channel": "app"}
    status, raised = customer.raise_ticket(new_key(), **body)
    assert (status, raised["outcome"]) == (201, "opened")
    ticket = raised["ticket"]
    assert ticket["unclassified"] and ticket["fault_code"].startswith("TRIAGE-")
    assert ticket["parts"] == []
    # When an agent classifies it
    engineer = ApiUser(local_stack, "eng-ada")
    path = f"/tickets/{raised['ticket_id']}/classify"
    assert customer.call("POST", path, {"code": "PSU-OVERVOLT"})[0] == 403
    status, classified = engineer.call("POST", path, {"code": "PSU-OVERVOLT"})
    # Then the same ticket has the code, its part reserved and a timeline entry
    assert status == 200, classified
    assert classified["ticket_id"] == raised["ticket_id"]
    assert classified["fault_code"] == "PSU-OVERVOLT" and not classified["unclassified"]
    assert [p["sku"] for p in classified["parts"]] == ["PSU-240-A"]
    _, shown = engineer.call("GET", f"/tickets/{raised['ticket_id']}")
    assert {"classified", "parts_reserved"} <= {e["kind"] for e in shown["timeline"]}
    # And the stack's notifier told the customer, once, what the fault turned out to be
    reports = NotificationReports(
        table=local_stack.target.resource("NotificationsTable"),
        ddb=local_stack.target.client("dynamodb"),
    )

    def told() -> list[dict[str, Any]]:
        return [
            n
            for n in reports.list_notifications()
            if n.get("ticket_id") == raised["ticket_id"] and n.get("kind") == "ticket_classified"
        ]

    (message,) = wait_for(told, timeout=60, what="the ticket-classified notification")
    assert message["customer_id"] == "c-0003"


def test_an_agent_raises_for_a_vip_customer_by_phone(local_stack: Stack) -> None:
    engineer = ApiUser(local_stack, "eng-ada")
    body = {
        "device": "ic-300-0167",
        "symptom": "TEMP-HIGH",
        "channel": "phone",
        "for_customer": "c-0007",
        "preferred_contact": "+1 555 0100",
    }
    status, raised = engineer.raise_ticket(new_key(), **body)
    assert (status, raised["outcome"]) == (201, "opened"), raised
    ticket = raised["ticket"]
    assert (ticket["channel"], ticket["raised_by"]) == ("phone", "agent:eng-ada")
    assert ticket["customer_tier"] == "vip"
    # Then a callback task is due, listed for staff, and done through the API
    task_id = raised["callback"]["task_id"]
    _, tasks = engineer.call("GET", "/tasks?status=open")
    assert task_id in {t["task_id"] for t in tasks}
    status, done = engineer.call("POST", f"/tasks/{task_id}/done", {"note": "called back"})
    assert (status, done["task_status"]) == (200, "done")


def test_customers_cannot_raise_for_others_or_through_agent_channels(local_stack: Stack) -> None:
    customer = ApiUser(local_stack, "cust-0001")
    status, answer = customer.raise_ticket(device="ev-ch-0162", symptom="TEMP-HIGH", channel="app")
    assert (status, answer["reason"]) == (404, "not_found")
    status, answer = customer.raise_ticket(device="rt-x-0161", symptom="TEMP-HIGH", channel="phone")
    assert (status, answer["reason"]) == (422, "channel_not_allowed")
    status, symptoms = customer.call("GET", "/symptoms?lang=zh-CN")
    assert status == 200 and {s["code"]: s["name"] for s in symptoms}["FAN-STALL"] == "散热风扇停转"


RAISED_OPERATIONS = {
    ("POST", "/tickets"),
    ("POST", "/tickets/{ticket_id}/classify"),
    ("GET", "/symptoms"),
    ("GET", "/tasks"),
    ("POST", "/tasks/{task_id}/done"),
}


def test_a_schema_driven_fuzz_of_the_raised_ticket_routes_finds_no_server_errors(
    local_stack: Stack,
) -> None:
    operations = [
        op for op in api_operations() if (op.method.upper(), op.path) in RAISED_OPERATIONS
    ]
    assert len(operations) == 5
    errors: list[str] = []
    for user in ("eng-ada", "cust-0001"):
        token = ApiUser(local_stack, user).token
        for operation in operations:
            errors += server_errors(local_stack.state["api_url"], operation, token, max_examples=15)
    assert not errors, "\n".join(errors[:10])


def test_the_cli_raises_and_classifies_through_the_api(
    local_stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an agent logged in with a state dir of their own (the shared stack's stays as it is)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    shutil.copy(local_stack.stack.state_dir / "local.json", state_dir / "local.json")
    where = ["--state-dir", str(state_dir)]
    assert cli_main(["login", "--user", "eng-linus", *where]) == 0
    capsys.readouterr()
    # When they raise a free-text ticket for c-0003 by phone with a key, twice
    create = ["tickets", "create", "--thing", "ic-300-0083", "--text", "display flickers"]
    create += ["--channel", "phone", "--for-customer", "c-0003", "--idempotency-key", new_key()]
    assert cli_main([*create, "--json", *where]) == 0
    first = json.loads(capsys.readouterr().out)
    assert cli_main([*create, "--json", *where]) == 0
    again = json.loads(capsys.readouterr().out)
    # Then one ticket, raised by the agent by phone
    assert (first["outcome"], again["outcome"]) == ("opened", "duplicate_request")
    assert first["ticket_id"] == again["ticket_id"]
    assert first["ticket"]["raised_by"] == "agent:eng-linus"
    # And classifying it gives it the code
    classify = ["tickets", "classify", first["ticket_id"], "--code", "TEMP-HIGH", "--json"]
    assert cli_main([*classify, *where]) == 0
    classified = json.loads(capsys.readouterr().out)
    assert (classified["ticket_id"], classified["fault_code"]) == (first["ticket_id"], "TEMP-HIGH")

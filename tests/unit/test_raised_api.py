"""The raised-ticket routes on the support API: status codes, reasons and the Idempotency-Key
header, on payload-format-2.0 events with the use cases wired to in-memory fakes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aftercare.api import raised_routes

from tests.fakes.faults import THING
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.fakes.raised import RaisedWorld, raised_world
from tests.fakes.stores import FakeTicketStore

API = load_handler("api", "api_handler")
CUSTOMER = {
    "sub": "3",
    "token_use": "id",
    "cognito:username": "cust-std",
    "cognito:groups": ["customers"],
    "custom:customer_id": "c-std",
}
OTHER = CUSTOMER | {"cognito:username": "cust-other", "custom:customer_id": "c-other"}
AGENT = {
    "sub": "1",
    "token_use": "id",
    "cognito:username": "eng-ada",
    "cognito:groups": ["engineers"],
}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> RaisedWorld:
    world = raised_world()
    monkeypatch.setattr(raised_routes, "raised_deps", lambda: (world.raising, world.classifying))
    return world


@pytest.fixture
def store(world: RaisedWorld) -> FakeTicketStore:
    return world.store


def call(
    method: str, path: str, claims: dict[str, Any], body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    event = http_api_event(method, path, claims, body)
    if key is not None:
        event["headers"]["idempotency-key"] = key
    response = API.app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def body(**extra: Any) -> dict[str, Any]:
    return {"device": THING, "symptom": "FAN-STALL", "channel": "app"} | extra


def test_raise_opens_201_then_a_retry_is_200_with_the_same_ticket(store):
    status, first = call("POST", "/tickets", CUSTOMER, body(), key="k-0000001")
    assert status == 201 and first["outcome"] == "opened"
    assert first["ticket"]["channel"] == "app" and first["ticket"]["raised_by"] == "customer:c-std"
    status, again = call("POST", "/tickets", CUSTOMER, body(), key="k-0000001")
    assert (status, again["outcome"]) == (200, "duplicate_request")
    assert again["ticket_id"] == first["ticket_id"] and len(store.tickets) == 1


def test_the_same_key_with_another_body_is_409(store):
    call("POST", "/tickets", CUSTOMER, body(), key="k-0000002")
    status, answer = call("POST", "/tickets", CUSTOMER, body(symptom="TEMP-HIGH"), key="k-0000002")
    assert (status, answer["reason"]) == (409, "idempotency_key_reused")


def test_a_second_report_is_already_being_handled(store):
    call("POST", "/tickets", CUSTOMER, body())
    status, answer = call("POST", "/tickets", CUSTOMER, body(description="still broken"))
    assert (status, answer["outcome"]) == (200, "already_being_handled")


@pytest.mark.parametrize(
    ("claims", "payload", "key", "expected"),
    [
        (OTHER, body(), None, (404, "not_found")),
        (CUSTOMER, body(channel="phone"), None, (422, "channel_not_allowed")),
        (CUSTOMER, body(channel="device"), None, (422, "validation_error")),
        (CUSTOMER, body(symptom="NO-SUCH-CODE"), None, (422, "unknown_symptom")),
        (CUSTOMER, body(extra=1), None, (422, "validation_error")),
        (CUSTOMER, body(), "short", (422, "validation_error")),
        (AGENT, body(channel="phone", for_customer="c-vip"), None, (422, "customer_mismatch")),
    ],
)
def test_bad_requests_get_a_specific_reason(store, claims, payload, key, expected):
    status, answer = call("POST", "/tickets", claims, payload, key=key)
    assert (status, answer["reason"]) == expected, answer


def test_classify_is_for_staff_and_moves_a_triage_ticket_to_a_code(store):
    _, raised = call("POST", "/tickets", CUSTOMER, body(symptom="the fan is silent"))
    path = f"/tickets/{raised['ticket_id']}/classify"
    assert call("POST", path, CUSTOMER, {"code": "FAN-STALL"})[0] == 403
    assert call("POST", path, AGENT, {"code": "NOPE-NOPE"})[1]["reason"] == "unknown_symptom"
    status, ticket = call("POST", path, AGENT, {"code": "FAN-STALL"})
    assert (status, ticket["fault_code"], ticket["ticket_id"]) == (
        200,
        "FAN-STALL",
        raised["ticket_id"],
    )
    assert call("POST", path, AGENT, {"code": "FAN-STALL"})[1]["reason"] == "already_classified"


def test_symptoms_in_english_and_chinese(store):
    status, english = call("GET", "/symptoms", CUSTOMER)
    _, chinese = call("GET", "/symptoms?lang=zh-CN", CUSTOMER)
    assert status == 200
    assert {s["code"]: s["name"] for s in chinese}["FAN-STALL"] == "散热风扇停转"
    assert {s["code"]: s["name"] for s in english}["FAN-STALL"] == "Cooling fan stalled"
    assert call("GET", "/symptoms?lang=fr", CUSTOMER)[0] == 422


def test_vip_phone_callback_tasks_are_listed_and_done_by_staff(store):
    payload = body(device="ac-vip", channel="phone", for_customer="c-vip")
    _, raised = call("POST", "/tickets", AGENT, payload)
    task_id = raised["callback"]["task_id"]
    assert call("GET", "/tasks", CUSTOMER)[0] == 403
    status, tasks = call("GET", "/tasks?status=open", AGENT)
    assert status == 200 and [t["task_id"] for t in tasks] == [task_id]
    status, done = call("POST", f"/tasks/{task_id}/done", AGENT, {"note": "called back"})
    assert (status, done["task_status"]) == (200, "done")
    assert call("POST", f"/tasks/{task_id}/done", AGENT, {})[1]["reason"] == "task_already_done"
    assert call("POST", "/tasks/T-NOPE.callback/done", AGENT, {})[0] == 404

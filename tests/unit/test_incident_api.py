"""The fleet incident routes on the support API: who may call them, status codes and reasons,
on payload-format-2.0 events with the incident desk wired to in-memory fakes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aftercare.api import incident_routes
from aftercare.domain.ports.campaigns import CampaignNotQueued

from tests.fakes.http_api import http_api_event
from tests.fakes.incidents import INCIDENT_ID, IncidentWorld, children
from tests.fakes.lambda_runtime import load_handler

API = load_handler("api", "api_handler")
ENGINEER = {
    "sub": "1",
    "token_use": "id",
    "cognito:username": "eng-ada",
    "cognito:groups": ["engineers"],
}
MANAGER = ENGINEER | {"cognito:username": "mgr-li", "cognito:groups": ["managers"]}
CUSTOMER = {
    "sub": "3",
    "token_use": "id",
    "cognito:username": "cust-std",
    "cognito:groups": ["customers"],
    "custom:customer_id": "c-0001",
}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> IncidentWorld:
    world = IncidentWorld(children(3))
    monkeypatch.setattr(incident_routes, "desk", lambda: world.desk)
    return world


def call(method: str, path: str, claims: dict[str, Any], body: Any = None) -> tuple[int, Any]:
    response = API.app.resolve(http_api_event(method, path, claims, body), None)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def test_staff_list_and_show_incidents(world):
    status, rows = call("GET", "/incidents", MANAGER)
    assert status == 200 and [r["incident_id"] for r in rows] == [INCIDENT_ID]
    assert rows[0]["children"] == 3 and rows[0]["status"] == "open"
    status, view = call("GET", f"/incidents/{INCIDENT_ID}", ENGINEER)
    assert status == 200 and view["children_shown"] == 3
    assert view["children_by_status"] == {"open": 3}


def test_customers_may_not_see_incidents(world):
    assert call("GET", "/incidents", CUSTOMER)[0] == 403
    assert call("GET", f"/incidents/{INCIDENT_ID}", CUSTOMER)[0] == 403
    status, answer = call(
        "POST", f"/incidents/{INCIDENT_ID}/resolve", CUSTOMER, {"fix": "reset_component"}
    )
    assert (status, answer["reason"]) == (403, "forbidden")


def test_unknown_ids_bad_bodies_and_a_second_resolve_are_refused_with_a_reason(world):
    assert call("GET", "/incidents/INC-202603011200-ffffff", ENGINEER)[1]["reason"] == "not_found"
    assert call("GET", "/incidents/not-an-id", ENGINEER)[0] == 422
    path = f"/incidents/{INCIDENT_ID}/resolve"
    assert call("POST", path, ENGINEER, {"fix": "firmware_fix"})[0] == 422  # no note
    assert call("POST", path, ENGINEER, {"fix": "reset_component", "extra": 1})[0] == 422
    status, view = call("POST", path, ENGINEER, {"fix": "reset_component"})
    assert status == 202 and view["incident"]["status"] == "mitigating"
    assert view["campaign"]["sent"] == 0 and view["campaign"]["started_by"] == "user:eng-ada"
    status, answer = call("POST", path, ENGINEER, {"fix": "reset_component"})
    assert (status, answer["reason"]) == (409, "campaign_running")
    # When the worker has sent the campaign
    world.run_campaign()
    # Then the incident shows it resolved with its counts, and a third resolve is refused
    status, view = call("GET", f"/incidents/{INCIDENT_ID}", ENGINEER)
    assert view["incident"]["status"] == "resolved"
    assert (view["campaign"]["sent"], view["campaign"]["pages_done"]) == (3, 1)
    status, answer = call("POST", path, ENGINEER, {"fix": "reset_component"})
    assert (status, answer["reason"]) == (409, "already_resolved")


def test_a_campaign_the_queue_refused_is_a_502_with_its_reason(world):
    def refuse(page: object) -> None:
        raise CampaignNotQueued("queue unreachable")

    world.queue.enqueue = refuse
    path = f"/incidents/{INCIDENT_ID}/resolve"
    status, answer = call("POST", path, ENGINEER, {"fix": "reset_component"})
    assert (status, answer["reason"]) == (502, "campaign_not_queued")
    assert call("GET", f"/incidents/{INCIDENT_ID}", ENGINEER)[1]["incident"]["status"] == "open"

"""The one caller helper: ID tokens only, and a caller is staff or one customer, never neither.

Every route of both API functions (support API and surveys) goes through it: each refuses an
access token with 401 and a customer token without a customer id with 403, before it reads
anything.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aftercare.domain.access import Forbidden, Unauthenticated, caller_from_claims

from infra import openapi
from tests.fakes.http_api import http_api_event

ID = {"token_use": "id", "sub": "s-1", "cognito:username": "u"}
ACCESS = {"token_use": "access", "sub": "s-1", "username": "u", "client_id": "abc"}
STAFF_GROUPS = {"cognito:groups": "[engineers]"}
CUSTOMER = {"cognito:groups": "[customers]", "custom:customer_id": "c-0001"}
BODIES = {
    "POST /parked/replay": {"source": "fault-dlq", "parked_key": "2026-11-01T08:00:00Z#m-1"},
    "POST /tickets/{ticket_id}/diagnostics": {},
    "POST /surveys/{survey_id}/answer": {"rating": 5},
    "POST /tickets/{ticket_id}/dispatch": {"reason": "a visit is needed"},
    "POST /tickets/{ticket_id}/booking": {"slot_id": "S-E-ada.20300101T0900Z.90"},
    "POST /bookings/{booking_id}/reschedule": {
        "slot_id": "S-E-ada.20300101T0900Z.90",
        "reason": "later suits",
    },
    "POST /bookings/{booking_id}/cancel": {"reason": "not needed"},
    "PUT /engineers/{engineer_id}": {
        "engineer_id": "E-ada",
        "name": "Ada",
        "kind": "in_house",
        "skills": [{"level": 2}],
        "regions": ["eu-west"],
        "home": {"lat": 53.3, "lon": -6.2},
        "time_zone": "Europe/Dublin",
        "working_hours": {},
    },
    "POST /dispatch/assign": {
        "ticket_id": "T-AAAAAAAAAAAA",
        "engineer_id": "E-ada",
        "start": "2030-01-01T09:00:00Z",
    },
    "POST /bookings/{booking_id}/status": {"status": "en_route", "expected_version": 1},
    "POST /tickets": {"device": "ac-hp-0001", "symptom": "FAN-STALL", "channel": "app"},
    "POST /tickets/{ticket_id}/classify": {"code": "FAN-STALL"},
    "POST /tasks/{task_id}/done": {},
    "POST /devices/claim": {"serial": "RTX20259001", "code": "DEMO-CLAIM-0001"},
    "POST /devices/{thing}/transfer": {"release": True},
    "POST /assist": {"question": "fan not turning"},
    "POST /incidents/{incident_id}/resolve": {"fix": "reset_component"},
}
# Path values that pass a route's own id pattern (validation runs before the caller is known).
SAMPLE_IDS = {
    "booking_id": "B-0001abcd",
    "engineer_id": "E-0001abcd",
    "incident_id": "INC-202612061200-00abcd",
    "step": "3",
}


def test_an_id_token_of_an_engineer_is_staff():
    caller = caller_from_claims(ID | STAFF_GROUPS)
    assert caller.staff and caller.owner_scope is None


def test_an_id_token_of_a_customer_is_that_customer():
    caller = caller_from_claims(ID | CUSTOMER)
    assert not caller.staff and caller.owner_scope == "c-0001"


def test_an_engineer_is_identified_by_the_engineer_id_claim_and_nobody_else_is() -> None:
    engineer = caller_from_claims(ID | STAFF_GROUPS | {"custom:engineer_id": "E-ada"})
    assert engineer.require_field_engineer() == "E-ada"
    manager = caller_from_claims(
        ID | {"cognito:groups": "[managers]", "custom:engineer_id": "E-ada"}
    )
    assert manager.engineer_id is None and manager.manager
    with pytest.raises(Forbidden):
        manager.require_field_engineer()


@pytest.mark.parametrize("groups", [STAFF_GROUPS, CUSTOMER, {"cognito:groups": "[customers]"}])
def test_access_tokens_are_refused_whoever_holds_them(groups):
    # Access tokens carry groups but no custom attributes: never guess who that is
    with pytest.raises(Unauthenticated, match="ID token"):
        caller_from_claims(ACCESS | groups)


def test_claims_without_token_use_or_no_claims_are_refused():
    with pytest.raises(Unauthenticated):
        caller_from_claims({"sub": "x", "cognito:groups": "[managers]"})
    with pytest.raises(Unauthenticated):
        caller_from_claims({})


def test_a_customer_without_a_customer_id_is_forbidden_never_staff():
    with pytest.raises(Forbidden, match="customer_id"):
        caller_from_claims(ID | {"cognito:groups": "[customers]"})


def test_a_caller_in_no_group_is_forbidden():
    with pytest.raises(Forbidden):
        caller_from_claims(ID)


# --------------------------------------------------------------------------- every route


def routes() -> list[tuple[str, Any, str, str]]:
    """(function, app, method, path) of every route each function documents in its OpenAPI."""
    found = []
    for name in openapi.FUNCTIONS:
        app = openapi.load_function(name).app
        for path, item in app.get_openapi_schema().paths.items():
            for method in ("get", "put", "post", "delete", "patch"):
                if getattr(item, method) is not None:
                    found.append((name, app, method.upper(), path))
    return found


def call(app: Any, method: str, path: str, claims: dict[str, Any]) -> tuple[int, Any]:
    # path parameters that fit their patterns: the caller is checked after validation
    concrete = re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE_IDS.get(m.group(1), "X-0001abcd"), path)
    event = http_api_event(method, concrete, claims, BODIES.get(f"{method} {path}"))
    response = app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


def test_every_function_has_routes_to_check():
    assert {name for name, *_ in routes()} == {
        "api",
        "survey",
        "dispatch_api",
        "jobs",
        "kpi_api",
        "owners",
        "parked_api",
    }
    assert len(routes()) >= 14


@pytest.mark.parametrize(("name", "app", "method", "path"), routes())
def test_every_route_refuses_an_access_token(name, app, method, path):
    for groups in (STAFF_GROUPS, CUSTOMER):
        status, body = call(app, method, path, ACCESS | groups)
        assert (status, body["reason"]) == (401, "id_token_required"), (name, path, body)


@pytest.mark.parametrize(("name", "app", "method", "path"), routes())
def test_every_route_forbids_a_customer_without_a_customer_id(name, app, method, path):
    status, body = call(app, method, path, ID | {"cognito:groups": "[customers]"})
    assert (status, body["reason"]) == (403, "forbidden"), (name, path, body)

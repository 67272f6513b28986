"""The support API: who sees what, error shapes, and the committed OpenAPI document.

The handler runs on payload-format-2.0 events built by the local gateway's own event builder,
with the use cases wired to in-memory fakes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aftercare.domain.access import Caller, caller_from_claims, claim_list
from aftercare.domain.paging import TicketPage, TicketQuery, newest_page
from aftercare.domain.ports import TicketDetail, TicketNotFound
from aftercare.domain.support import Support
from aftercare.domain.ticket_view import ticket_view
from aftercare.domain.tickets import Ticket, opened_key
from pydantic import ValidationError

from infra import openapi
from infra.local.apigw_events import claim_text
from tests.fakes.diagnostics import FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

ROOT = Path(__file__).resolve().parents[2]
OWN = make_ticket(thing="rt-x-0001")  # owned by c-0001
OTHER = make_ticket("FAN-STALL", thing="ac-hp-0004", model="AC-HP", routine="self_test").model_copy(
    update={"customer_id": "c-0004"}
)
DEVICES = {"rt-x-0001": "c-0001", "ac-hp-0004": "c-0004"}


API = load_handler("api", "api_handler")


class Tickets:
    def __init__(self, store: FakeDiagnosticsStore) -> None:
        self.store = store

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        if ticket_id not in self.store.tickets:
            raise TicketNotFound(ticket_id)
        return TicketDetail(ticket=self.store.tickets[ticket_id], occurrences=[], timeline=[])

    def list_tickets(self, *, status: str | None = None, thing: str | None = None) -> list[Ticket]:
        return [
            t
            for t in self.store.tickets.values()
            if (status is None or t.status == status) and (thing is None or t.thing == thing)
        ]

    def page_tickets(self, query: TicketQuery) -> TicketPage:
        keyed = [
            (opened_key(t.model_dump(mode="json")["opened_at"], t.ticket_id), t)
            for t in self.store.tickets.values()
            if (query.status is None or t.status == query.status)
            and (query.things is None or t.thing in query.things)
            and (query.customer_id is None or t.customer_id == query.customer_id)
        ]
        return newest_page(
            [(k, t) for k, t in keyed if not query.after or k < query.after], query.limit
        )


class Devices:
    def get(self, thing: str) -> dict[str, Any] | None:
        owner = DEVICES.get(thing)
        return {"thing": thing, "customer_id": owner, "model": "RT-X"} if owner else None

    def things_of(self, customer_id: str) -> list[str]:
        return [thing for thing, owner in DEVICES.items() if owner == customer_id]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeDiagnosticsStore:
    store = FakeDiagnosticsStore(OWN, OTHER)
    support = Support(
        tickets=Tickets(store),
        devices=Devices(),
        diagnostics=store,
        publisher=FakePublisher(),
        default_timeout=timedelta(minutes=5),
    )
    monkeypatch.setattr(API, "deps", lambda: support)
    return store


ENGINEER = {
    "sub": "1",
    "token_use": "id",
    "cognito:username": "eng-ada",
    "cognito:groups": ["engineers"],
}
MANAGER = {
    "sub": "2",
    "token_use": "id",
    "cognito:username": "mgr-grace",
    "cognito:groups": ["managers"],
}
CUSTOMER = {
    "sub": "3",
    "token_use": "id",
    "cognito:username": "cust-0001",
    "cognito:groups": ["customers"],
    "custom:customer_id": "c-0001",
}
NOBODY = {"sub": "4", "token_use": "id", "cognito:username": "guest"}


def call(
    method: str, path: str, claims: dict[str, Any] | None, body: Any = None
) -> tuple[int, Any]:
    response = respond(method, path, claims, body)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def respond(
    method: str, path: str, claims: dict[str, Any] | None, body: Any = None
) -> dict[str, Any]:
    event = http_api_event(method, path, claims, body)
    return dict(API.app.resolve(event, None))


# --------------------------------------------------------------------------- visibility


def test_staff_see_every_ticket(store):
    for claims in (ENGINEER, MANAGER):
        status, rows = call("GET", "/tickets", claims)
        assert status == 200 and {r["ticket_id"] for r in rows} == {OWN.ticket_id, OTHER.ticket_id}


def test_a_customer_sees_only_tickets_on_their_own_devices(store):
    status, rows = call("GET", "/tickets", CUSTOMER)
    assert status == 200 and [r["ticket_id"] for r in rows] == [OWN.ticket_id]
    assert call("GET", f"/tickets/{OWN.ticket_id}", CUSTOMER)[0] == 200


def test_another_customers_ticket_is_not_found_not_forbidden(store):
    # Given a ticket on a device the customer does not own
    # When the customer asks for it, its diagnostics or its device
    answers = [
        call("GET", f"/tickets/{OTHER.ticket_id}", CUSTOMER),
        call("GET", f"/tickets/{OTHER.ticket_id}/diagnostics", CUSTOMER),
        call("GET", "/devices/ac-hp-0004", CUSTOMER),
    ]
    # Then each is the same 404 as for something that does not exist
    missing = call("GET", "/tickets/T-DOESNOTEXIST", CUSTOMER)
    assert [a[0] for a in answers] == [404, 404, 404]
    assert answers[0][1]["reason"] == missing[1]["reason"] == "not_found"


def test_after_a_transfer_each_owner_sees_only_the_tickets_opened_for_them(store, monkeypatch):
    # Given c-0001's ticket on rt-x-0001, then the device transferred to c-0004, who has a
    # newer ticket on it
    monkeypatch.setitem(DEVICES, "rt-x-0001", "c-0004")
    newer = OWN.model_copy(update={"ticket_id": "T-AFTER", "customer_id": "c-0004"})
    store.tickets[newer.ticket_id] = newer
    neighbour = {**CUSTOMER, "cognito:username": "cust-0004", "custom:customer_id": "c-0004"}
    # Then the old owner keeps their ticket but not the device or the new owner's ticket
    assert [r["ticket_id"] for r in call("GET", "/tickets", CUSTOMER)[1]] == [OWN.ticket_id]
    assert call("GET", f"/tickets/{OWN.ticket_id}", CUSTOMER)[0] == 200
    assert call("GET", "/tickets/T-AFTER", CUSTOMER)[0] == 404
    assert call("GET", "/devices/rt-x-0001", CUSTOMER)[0] == 404
    # And the new owner sees the device with only their own ticket
    mine = {r["ticket_id"] for r in call("GET", "/tickets?thing=rt-x-0001", neighbour)[1]}
    assert mine == {"T-AFTER"}
    assert call("GET", f"/tickets/{OWN.ticket_id}", neighbour)[0] == 404
    status, device = call("GET", "/devices/rt-x-0001", neighbour)
    assert status == 200 and [t["ticket_id"] for t in device["tickets"]] == ["T-AFTER"]


def test_only_engineers_start_diagnostics(store):
    path = f"/tickets/{OWN.ticket_id}/diagnostics"
    assert call("POST", path, CUSTOMER, {})[0] == 403
    assert call("POST", path, MANAGER, {})[0] == 403
    status, record = call("POST", path, ENGINEER, {"routine": "self_test", "timeout_s": 30})
    assert status == 202 and record["status"] == "pending"
    assert record["requested_by"] == "user:eng-ada"


def test_a_customer_cannot_read_another_customers_diagnostic(store):
    status, record = call("POST", f"/tickets/{OTHER.ticket_id}/diagnostics", ENGINEER, {})
    assert status == 202
    assert call("GET", f"/diagnostics/{record['request_id']}", CUSTOMER)[0] == 404
    assert call("GET", f"/diagnostics/{record['request_id']}", MANAGER)[0] == 200


def test_users_in_no_group_are_forbidden(store):
    status, body = call("GET", "/tickets", NOBODY)
    assert status == 403 and body["reason"] == "forbidden"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/tickets?status=bogus", None),
        ("GET", "/tickets?limit=0", None),
        ("GET", "/tickets?limit=201", None),
        ("POST", f"/tickets/{OWN.ticket_id}/diagnostics", {"routine": "format_disk"}),
        ("POST", f"/tickets/{OWN.ticket_id}/diagnostics", {"timeout_s": 1}),
        ("POST", f"/tickets/{OWN.ticket_id}/diagnostics", {"colour": "red"}),
        ("POST", f"/tickets/{OWN.ticket_id}/diagnostics", {"params": {"x": 1e300}}),
    ],
)
def test_invalid_requests_are_422_with_a_reason(store, method, path, body):
    status, answer = call(method, path, ENGINEER, body)
    assert status == 422 and answer["reason"] == "validation_error" and answer["detail"]


def test_staff_page_through_all_tickets_with_the_cursor_header(store):
    # Given more tickets than fit on one page
    for n in range(5):
        extra = make_ticket("SENSOR-DRIFT", thing="rt-x-0001").model_copy(
            update={"ticket_id": f"T-PAGE{n}"}
        )
        store.tickets[extra.ticket_id] = extra
    # When an engineer follows X-Next-Cursor two at a time
    seen: list[str] = []
    query = "limit=2"
    for _ in range(10):
        response = respond("GET", f"/tickets?{query}", ENGINEER)
        seen += [row["ticket_id"] for row in json.loads(response["body"])]
        cursor = response["headers"].get("X-Next-Cursor")
        if cursor is None:
            break
        query = f"limit=2&cursor={cursor}"
    # Then every ticket came exactly once
    assert sorted(seen) == sorted(store.tickets) and len(seen) == len(set(seen))


def test_a_tampered_cursor_is_a_400_with_a_reason(store):
    response = respond("GET", "/tickets?limit=1", ENGINEER)
    cursor = response["headers"]["X-Next-Cursor"]
    for bad in (cursor[:-2] + "xx", "bm90LWpzb24", cursor + "!"):
        status, body = call("GET", f"/tickets?limit=1&cursor={bad}", ENGINEER)
        assert status == 400 and body["reason"] == "invalid_cursor", bad
    # a cursor replayed with other filters
    status, body = call("GET", f"/tickets?limit=1&status=open&cursor={cursor}", ENGINEER)
    assert status == 400 and "other filters" in body["message"]


HOSTILE_BODIES = [
    (b"[" * 10_000 + b"]" * 10_000, 400, "malformed_body"),
    (b'{"params": {"n": ' + b"9" * 4301 + b"}}", 422, "validation_error"),
    (b'{"params": {"n": 1e300}}', 422, "validation_error"),
    (b'{"params": {"n": 1e-300}}', 422, "validation_error"),
    (b'{"params": {"n": 1.' + b"1" * 38 + b"}}", 422, "validation_error"),
    (b'{"params": {"n": NaN}}', 400, "malformed_body"),
    (b'{"params": {"n": Infinity}}', 400, "malformed_body"),
    (b'{"params": {"n": 1e400}}', 422, "validation_error"),
    (b'{"routine": "self_test", "routine": "log_excerpt"}', 400, "malformed_body"),
]


@pytest.mark.parametrize(("body", "status", "reason"), HOSTILE_BODIES)
def test_hostile_diagnostics_bodies_are_4xx_with_a_reason(store, body, status, reason):
    # When an engineer posts a body the strict decoder refuses
    answer_status, answer = call("POST", f"/tickets/{OWN.ticket_id}/diagnostics", ENGINEER, body)
    # Then it is a client error naming why, and nothing was started
    assert (answer_status, answer["reason"]) == (status, reason)
    assert answer["message"]
    assert not store.records


def test_unknown_routes_are_404_json(store):
    status, body = call("GET", "/nowhere", ENGINEER)
    assert status == 404 and body["reason"] == "no_route"


def test_diagnostics_on_a_closed_ticket_conflict(store):
    closed = make_ticket("SENSOR-DRIFT", status="resolved")
    store.tickets[closed.ticket_id] = closed
    status, body = call("POST", f"/tickets/{closed.ticket_id}/diagnostics", ENGINEER, {})
    assert status == 409 and body["reason"] == "ticket_not_active"


# --------------------------------------------------------------------------- claims


def test_list_claims_arrive_as_api_gateway_renders_them():
    # Given the groups claim as API Gateway hands it to the function
    rendered = claim_text(["engineers", "managers"])
    # Then it reads back as the list
    assert rendered == "[engineers managers]"
    assert claim_list(rendered) == ["engineers", "managers"]
    assert caller_from_claims({"cognito:groups": rendered, "sub": "x", "token_use": "id"}).staff


def test_a_customer_without_a_customer_id_cannot_exist():
    with pytest.raises(ValidationError):
        Caller(subject="s", username="u", groups=frozenset({"customers"}))


# --------------------------------------------------------------------------- OpenAPI


def test_the_committed_openapi_document_is_the_generated_one():
    committed = json.loads((ROOT / "functions/api/openapi.json").read_text())
    assert committed == openapi.document(), "run: python -m infra.openapi"


def test_the_openapi_document_covers_the_survey_routes():
    paths = openapi.document()["paths"]
    assert {"/surveys/{survey_id}", "/surveys/{survey_id}/answer"} <= set(paths)
    answer = paths["/surveys/{survey_id}/answer"]["post"]["responses"]
    assert answer["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")


def test_two_functions_defining_one_schema_differently_is_an_error(monkeypatch):
    # Both functions share ErrorBody; a same-named model that differs must not silently win
    def schema_of(module: Any) -> dict[str, Any]:
        kind = "integer" if module.__name__.endswith("survey") else "string"
        path = f"/{module.__name__}"
        return {"paths": {path: {}}, "components": {"schemas": {"Shared": {"type": kind}}}}

    monkeypatch.setattr(openapi, "_schema_of", schema_of)
    with pytest.raises(ValueError, match="Shared"):
        openapi.document()


def test_the_openapi_document_is_served_without_a_token(store):
    status, document = call("GET", "/openapi.json", None)
    assert status == 200 and document["info"]["title"] == openapi.API_TITLE


def test_a_ticket_says_what_the_customer_is_expected_to_pay(store):
    # Given the customer's own ticket, out of warranty
    status, body = call("GET", f"/tickets/{OWN.ticket_id}", CUSTOMER)
    # Then its view carries the price table's estimate for the expected repair path
    assert status == 200
    cost = body["estimate"]
    assert cost["currency"] == "EUR" and cost["pricing_version"]
    assert float(cost["total"]) == float(cost["parts"]) + float(cost["labour"])
    expected = 0.0 if OWN.in_warranty else float(cost["total"])
    assert float(cost["customer_pays"]) == expected


def test_the_api_answers_the_one_ticket_view_the_cli_prints(store):
    # Given a ticket with a diagnostic run on it
    started, _ = call("POST", f"/tickets/{OWN.ticket_id}/diagnostics", ENGINEER, {})
    assert started == 202
    # When staff read it through the API
    status, body = call("GET", f"/tickets/{OWN.ticket_id}", ENGINEER)
    # Then the answer is, field for field, the shared view the CLI's direct read prints
    detail = Tickets(store).get_ticket(OWN.ticket_id)
    shown = ticket_view(detail, store.for_ticket(OWN.ticket_id)).model_dump(mode="json")
    assert status == 200 and body == shown
    assert len(body["diagnostics"]) == 1 and body["estimate"]["pricing_version"]

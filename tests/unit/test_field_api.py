"""Field service routes on the support API: status codes and reasons (409 `slot_taken`), who
may do what, and the views; the handler runs on format-2.0 events with the booking use cases on
moto tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aftercare.api import field_routes
from aftercare.domain.calendar import FieldBooking, load_booking_policy
from aftercare.models.field import Partner
from moto import mock_aws

from tests.fakes.diagnostics import make_ticket
from tests.fakes.field import Tickets, engineer, field_stores
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

API = load_handler("api", "api_handler")
TICKET = make_ticket(thing="rt-x-0001").model_copy(update={"ticket_id": "T-1"})
OTHERS = make_ticket(thing="rt-x-0002").model_copy(
    update={"ticket_id": "T-2", "customer_id": "c-0002"}
)
CUSTOMER = {"sub": "3", "token_use": "id", "cognito:username": "cust-0001",
            "cognito:groups": ["customers"], "custom:customer_id": "c-0001"}  # fmt: skip
CUSTOMER2 = {
    **CUSTOMER,
    "sub": "5",
    "cognito:username": "cust-0002",
    "custom:customer_id": "c-0002",
}
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


@pytest.fixture
def field(fake_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FieldBooking]:
    with mock_aws():
        ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        calendar, directory = field_stores(ddb)
        directory.put_engineer(engineer("E-ada"))
        directory.put_partner(
            Partner(partner_id="PTN-west", name="West", regions=["eu-west"], daily_job_cap=3,
                    cost_per_visit=90, promised_response_h=24)
        )  # fmt: skip
        service = FieldBooking(
            tickets=Tickets(ddb, TICKET, OTHERS),
            directory=directory,
            calendar=calendar,
            calendar_reads=calendar,
            bookings=calendar,
            policy=load_booking_policy().model_copy(update={"lead_minutes": 0, "horizon_days": 14}),
        )
        monkeypatch.setattr(field_routes, "field_service", lambda: service)
        yield service


def call(method: str, path: str, claims: dict[str, Any], body: Any = None) -> tuple[int, Any]:
    response = API.app.resolve(http_api_event(method, path, claims, body), None)
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def test_a_customer_gets_held_slots_and_books_one(field):
    # Given a customer's offered slots
    status, slots = call("GET", "/tickets/T-1/slots", CUSTOMER)
    assert status == 200 and slots
    assert {"slot_id", "start", "end", "engineer_id", "hold_expires_at"} <= set(slots[0])
    # When they book the first
    status, booking = call(
        "POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": slots[0]["slot_id"]}
    )
    # Then 201 with the booking; a retry is 200 with the same booking
    assert status == 201 and booking["status"] == "scheduled" and booking["source"] == "customer"
    again = call("POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": slots[0]["slot_id"]})
    assert again == (200, booking)
    assert call("GET", f"/bookings/{booking['booking_id']}", CUSTOMER) == (200, booking)
    assert call("GET", "/tickets/T-1/bookings", ENGINEER) == (200, [booking])


def test_someone_elses_time_is_409_slot_taken(field):
    _, slots = call("GET", "/tickets/T-1/slots", CUSTOMER)
    status, body = call("POST", "/tickets/T-2/booking", CUSTOMER2, {"slot_id": slots[0]["slot_id"]})
    assert status == 409 and body["reason"] == "slot_taken"


def test_a_ticket_that_changed_meanwhile_is_409_with_no_booking_and_the_retry_books(field):
    # Given the ticket changes under the booking (another writer, right after it is read)
    _, slots = call("GET", "/tickets/T-1/slots", CUSTOMER)
    field.tickets.races = 1
    body = {"slot_id": slots[0]["slot_id"]}
    status, answer = call("POST", "/tickets/T-1/booking", CUSTOMER, body)
    # Then 409 concurrent_update, and no booking was left behind
    assert (status, answer["reason"]) == (409, "concurrent_update")
    assert call("GET", "/tickets/T-1/bookings", CUSTOMER) == (200, [])
    # When the customer retries, the booking is made and the ticket is scheduled with it
    status, booking = call("POST", "/tickets/T-1/booking", CUSTOMER, body)
    assert status == 201 and booking["status"] == "scheduled"
    assert field.tickets.tickets["T-1"].status.value == "scheduled"


def test_bad_slots_and_bodies_are_4xx_with_a_reason(field):
    assert call("POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": "nope"})[0] == 422
    assert (
        call("POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": "S-E-ada.x", "x": 1})[0] == 422
    )
    status, body = call(
        "POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": "S-E-ada.20261208T0300Z.60"}
    )
    assert (status, body["reason"]) == (422, "invalid_slot")
    assert call("GET", "/tickets/T-2/slots", CUSTOMER)[0] == 404
    assert call("GET", "/bookings/B-missing", ENGINEER)[1]["reason"] == "not_found"


def test_reschedule_and_cancel_with_reasons(field):
    _, slots = call("GET", "/tickets/T-1/slots", CUSTOMER)
    _, booking = call("POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": slots[0]["slot_id"]})
    status, moved = call(
        "POST", f"/bookings/{booking['booking_id']}/reschedule", CUSTOMER,
        {"slot_id": slots[1]["slot_id"], "reason": "later"},
    )  # fmt: skip
    assert status == 201 and moved["rescheduled_from"] == booking["booking_id"]
    assert call("GET", f"/bookings/{booking['booking_id']}", CUSTOMER)[1]["status"] == "cancelled"
    status, cancelled = call(
        "POST", f"/bookings/{moved['booking_id']}/cancel", CUSTOMER, {"reason": "fixed"}
    )
    assert status == 200 and cancelled["status"] == "cancelled"
    status, body = call(
        "POST", f"/bookings/{moved['booking_id']}/cancel", CUSTOMER, {"reason": "x"}
    )
    assert (status, body["reason"]) == (409, "invalid_booking_change")
    assert (
        call("POST", f"/bookings/{moved['booking_id']}/cancel", CUSTOMER, {"reason": ""})[0] == 422
    )


def test_another_customers_booking_is_not_found(field):
    _, slots = call("GET", "/tickets/T-1/slots", CUSTOMER)
    _, booking = call("POST", "/tickets/T-1/booking", CUSTOMER, {"slot_id": slots[0]["slot_id"]})
    status, body = call(
        "POST", f"/bookings/{booking['booking_id']}/cancel", CUSTOMER2, {"reason": "x"}
    )
    assert (status, body["reason"]) == (404, "not_found")


def test_staff_list_engineers_and_only_managers_edit_them(field):
    status, rows = call("GET", "/engineers", ENGINEER)
    assert status == 200 and [r["engineer_id"] for r in rows] == ["E-ada"]
    assert set(rows[0]) >= {
        "engineer_id",
        "name",
        "kind",
        "partner",
        "skills",
        "regions",
        "time_zone",
    }
    assert call("GET", "/engineers", CUSTOMER)[0] == 403
    assert call("GET", "/engineers?region=ap-east", ENGINEER) == (200, [])
    body = engineer("E-new", kind="partner", partner="PTN-west").model_dump(mode="json")
    assert call("PUT", "/engineers/E-new", ENGINEER, body)[0] == 403
    assert call("PUT", "/engineers/E-new", MANAGER, body) == (200, body)
    assert call("PUT", "/engineers/E-other", MANAGER, body)[1]["reason"] == "invalid_engineer"
    bad_zone = {**body, "time_zone": "Mars/Olympus"}
    assert call("PUT", "/engineers/E-new", MANAGER, bad_zone)[1]["reason"] == "invalid_engineer"
    assert call("PUT", "/engineers/E-new", MANAGER, {**body, "typo": 1})[0] == 422

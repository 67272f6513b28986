"""Self-service the device confirms: "I followed the guide" asks the device to verify; its answer
resolves the ticket `self_service` (parts released) or sends it towards dispatch."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from aftercare.adapters.diagnostics import attempt_items
from aftercare.api import guide_routes
from aftercare.domain.diagnostics import sweep_timeouts
from aftercare.domain.diagnostics_answers import handle_result
from aftercare.domain.diagnostics_records import (
    ONSITE_FLAG,
    RESULT_GRACE,
    PublishFailed,
    TicketNotActive,
    VerificationPending,
)
from aftercare.domain.guides import load_guides
from aftercare.domain.rules import load_catalog
from aftercare.domain.self_service import NotSelfServiceable, start_self_service
from aftercare.models.diagnostics import DiagnosticState, Outcome, Purpose
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.payloads import DiagnosticsEnvelope
from aftercare.models.tickets import Resolution, TicketStatus

from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

CATALOG = load_catalog()
TIMEOUT = timedelta(minutes=5)
FAN = PartsLine(
    reservation_id="R-1",
    sku="FAN-80MM",
    name_en="Cooling fan 80 mm",
    name_zh="80mm 散热风扇",
    qty=1,
    warehouse="WH-A",
    unit_price=12.5,
    currency="EUR",
    status=LineStatus.HELD,
    reserved_at=NOW,
)


def fan_stall(**extra: Any):
    return make_ticket(
        "FAN-STALL",
        thing="ac-hp-0004",
        model="AC-HP",
        routine="self_test",
        parts=[FAN],
        **extra,
    )


def attempt(store: FakeDiagnosticsStore, publisher: FakePublisher, ticket_id: str, at=NOW):
    ticket = store.load_ticket(ticket_id)
    return start_self_service(
        ticket,
        store.for_ticket(ticket_id),
        guides=load_guides(),
        store=store,
        publisher=publisher,
        actor="user:cust-0001",
        now=at,
        timeout=TIMEOUT,
    )


def device_answers(store, publisher, record, active_faults: list[str], at=NOW):
    payload = {
        "request_id": record.request_id,
        "status": "failed" if active_faults else "passed",
        "findings": {"active_faults": active_faults},
        "remedied": False,
        "completed_at": at.isoformat(),
    }
    envelope = DiagnosticsEnvelope(
        payload_b64=base64.b64encode(json.dumps(payload).encode()).decode(),
        thing=record.thing,
        received_at=int(at.timestamp() * 1000),
        topic=f"cmd/aftercare/{record.thing}/diagnostics/res",
    )
    return handle_result(envelope, store=store, publisher=publisher, catalog=CATALOG, now=at)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


def test_following_the_guide_records_an_attempt_and_asks_the_device(publisher):
    # Given an open fan stall on an air conditioner
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket)
    # When the customer says they followed the guide
    record = attempt(store, publisher, ticket.ticket_id)
    # Then the device is asked for the guide's verification, and the attempt is on the ticket
    assert (record.purpose, record.routine, record.status) == (
        Purpose.SELF_SERVICE,
        "self_test",
        DiagnosticState.PENDING,
    )
    assert publisher.published[0][1].request_id == record.request_id
    assert store.load_ticket(ticket.ticket_id).self_service_attempts == 1
    assert store.kinds(ticket.ticket_id) == ["self_service_followed", "diagnostics_requested"]
    assert store.timeline[ticket.ticket_id][0].detail["guide_id"] == "G-FAN-STALL-AC-HP"


def test_the_device_confirming_the_fix_resolves_self_service_and_releases_parts(publisher):
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket)
    record = attempt(store, publisher, ticket.ticket_id)
    # When the device's self-test no longer shows the fan stall
    outcome = device_answers(store, publisher, record, active_faults=[])
    # Then the ticket resolves as self-service, and the held fan goes back to stock
    assert outcome.outcome is Outcome.SELF_SERVICE_FIXED
    resolved = store.load_ticket(ticket.ticket_id)
    assert (resolved.status, resolved.resolution) == (
        TicketStatus.RESOLVED,
        Resolution.SELF_SERVICE,
    )
    change = store.completed[-1].status_change
    assert change is not None
    assert [(c.line.sku, c.to) for c in change.part_changes] == [("FAN-80MM", LineStatus.RELEASED)]
    assert change.entry.detail["resolution"] == "self_service"


def test_the_device_still_reporting_the_fault_sends_the_ticket_towards_dispatch(publisher):
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket)
    record = attempt(store, publisher, ticket.ticket_id)
    # When the device's self-test still shows the fan stall
    outcome = device_answers(store, publisher, record, active_faults=["FAN-STALL"])
    # Then the ticket stays open, flagged for a visit, and the timeline says why
    assert outcome.outcome is Outcome.SELF_SERVICE_FAILED
    still = store.load_ticket(ticket.ticket_id)
    assert still.status is TicketStatus.OPEN and ONSITE_FLAG in still.flags
    flagged = [e for e in store.timeline[ticket.ticket_id] if e.kind == "flagged"]
    assert flagged[-1].detail["because"] == "self_service_failed"


def test_a_silent_device_times_out_and_the_ticket_goes_towards_dispatch(publisher):
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket)
    attempt(store, publisher, ticket.ticket_id)
    # When nobody answers by the deadline
    assert sweep_timeouts(store, NOW + TIMEOUT + RESULT_GRACE + timedelta(seconds=1)) == 1
    # Then there is no deflection: the ticket is open and flagged for a visit
    still = store.load_ticket(ticket.ticket_id)
    assert still.resolution is None and ONSITE_FLAG in still.flags


def test_a_second_attempt_while_one_waits_is_refused_and_allowed_after(publisher):
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket)
    first = attempt(store, publisher, ticket.ticket_id)
    with pytest.raises(VerificationPending):
        attempt(store, publisher, ticket.ticket_id)
    # After a not-fixed answer the customer may try again: attempt 2, a new request
    device_answers(store, publisher, first, active_faults=["FAN-STALL"])
    second = attempt(store, publisher, ticket.ticket_id)
    assert second.request_id != first.request_id
    assert store.load_ticket(ticket.ticket_id).self_service_attempts == 2


def test_closed_or_not_self_serviceable_tickets_are_refused(publisher):
    closed = fan_stall(status=TicketStatus.RESOLVED)
    unsafe = make_ticket("EVSE-CABLE-TEMP", thing="ev-ch-0001", model="EV-CH")
    store = FakeDiagnosticsStore(closed, unsafe)
    with pytest.raises(TicketNotActive):
        attempt(store, publisher, closed.ticket_id)
    with pytest.raises(NotSelfServiceable):
        attempt(store, publisher, unsafe.ticket_id)
    assert not publisher.published


def test_a_request_that_cannot_be_published_is_marked_failed(publisher):
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket)
    publisher.failing = True
    with pytest.raises(PublishFailed):
        attempt(store, publisher, ticket.ticket_id)
    (record,) = store.records.values()
    assert record.status is DiagnosticState.FAILED


def test_the_attempt_transaction_counts_attempts_only_on_an_active_ticket():
    ticket = fan_stall()
    store, publisher = FakeDiagnosticsStore(ticket), FakePublisher()
    record = attempt(store, publisher, ticket.ticket_id)
    entries = store.timeline[ticket.ticket_id]
    items = attempt_items("Tickets", record, entries, 1)
    # The request is new, both entries are written, and the ticket update is the guard
    assert [next(iter(i.request)) for i in items] == ["Put", "Put", "Put", "Update"]
    update = items[-1].request["Update"]
    assert "self_service_attempts = :n" in update["UpdateExpression"]
    assert "#status IN" in update["ConditionExpression"]
    assert "attribute_not_exists(self_service_attempts)" in update["ConditionExpression"]
    second = attempt_items("Tickets", record, entries, 2)[-1].request["Update"]
    assert "attribute_not_exists" not in second["ConditionExpression"]


# --------------------------------------------------------------------------- the route


class Devices:
    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners

    def get(self, thing: str) -> dict[str, Any] | None:
        owner = self.owners.get(thing)
        return {"thing": thing, "customer_id": owner} if owner else None

    def things_of(self, customer_id: str) -> list[str]:
        return [t for t, c in self.owners.items() if c == customer_id]


def claims(customer: str) -> dict[str, Any]:
    return {
        "sub": "3",
        "token_use": "id",
        "cognito:username": f"cust-{customer}",
        "cognito:groups": ["customers"],
        "custom:customer_id": customer,
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    handler = load_handler("api", "api_handler")
    ticket = fan_stall()
    store = FakeDiagnosticsStore(ticket, make_ticket("EVSE-CABLE-TEMP", thing="ac-hp-0004"))
    deps = guide_routes.SelfServiceDeps(
        diagnostics=store,
        devices=Devices({"ac-hp-0004": "c-0001"}),
        publisher=FakePublisher(),
        timeout=TIMEOUT,
    )
    monkeypatch.setattr(guide_routes, "self_service_deps", lambda: deps)

    def post(ticket_id: str, customer: str = "c-0001") -> tuple[int, Any]:
        event = http_api_event("POST", f"/tickets/{ticket_id}/self-service", claims(customer), None)
        response = handler.app.resolve(event, None)
        return response["statusCode"], json.loads(response["body"])

    return post, ticket, store


def test_the_owner_gets_202_waiting_for_device_then_409_while_it_waits(api):
    post, ticket, store = api
    status, body = post(ticket.ticket_id)
    assert status == 202, body
    assert store.load_ticket(ticket.ticket_id).self_service_attempts == 1
    assert body["device_last_seen"].startswith(ticket.last_seen.date().isoformat())
    assert (body["status"], body["attempt"], body["routine"]) == (
        "waiting_for_device",
        1,
        "self_test",
    )
    status, body = post(ticket.ticket_id)
    assert (status, body["reason"]) == (409, "verification_pending")


def test_another_customers_or_a_missing_ticket_is_404_and_unsafe_codes_409(api):
    post, ticket, store = api
    assert post(ticket.ticket_id, customer="c-0002")[0] == 404
    assert post("T-AAAAAAAAAAAA")[0] == 404
    unsafe = next(t for t in store.tickets.values() if t.fault_code == "EVSE-CABLE-TEMP")
    status, body = post(unsafe.ticket_id)
    assert (status, body["reason"]) == (409, "not_self_serviceable")
    assert not store.records

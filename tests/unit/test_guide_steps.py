"""A guide step's device routine (e.g. "restart the network module from the app",
`routine: reset_component`) runs through the diagnostics round trip for the customer: once per
step and attempt, recorded on the ticket, deciding nothing; the verification after "I followed
the guide" decides. Steps without a routine, and codes without a self-service guide, refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aftercare.api import guide_routes
from aftercare.domain.diagnostics import sweep_timeouts
from aftercare.domain.guides import load_guides
from aftercare.domain.self_service import NoStepRoutine, NotSelfServiceable, run_guide_step
from aftercare.models.diagnostics import DiagnosticState, Outcome, Purpose
from aftercare.models.tickets import TicketStatus

from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.unit.test_self_service import TIMEOUT, Devices, claims, device_answers, fan_stall


def wifi_drop(**extra: Any):
    """An open Wi-Fi drop on an IC-300: its guide's step 3 restarts the network module."""
    return make_ticket("WIFI-DROP", thing="ic-300-0003", model="IC-300", **extra)


def run(store: FakeDiagnosticsStore, publisher: FakePublisher, ticket_id: str, step: int):
    return run_guide_step(
        store.load_ticket(ticket_id),
        step,
        guides=load_guides(),
        store=store,
        publisher=publisher,
        actor="user:cust-0003",
        now=NOW,
        timeout=TIMEOUT,
    )


def test_a_steps_routine_is_sent_to_the_device_once_per_step_and_attempt() -> None:
    # Given an open Wi-Fi drop whose guide's third step restarts the network module
    ticket, publisher = wifi_drop(), FakePublisher()
    store = FakeDiagnosticsStore(ticket)
    # When the customer taps that step's button, twice
    first = run(store, publisher, ticket.ticket_id, 3)
    again = run(store, publisher, ticket.ticket_id, 3)
    # Then one request, purpose guide_step, with the routine's parameters, is on the ticket
    assert (first.purpose, first.routine, first.status) == (
        Purpose.GUIDE_STEP,
        "reset_component",
        DiagnosticState.PENDING,
    )
    assert first.params == {"code": "WIFI-DROP"} and again.request_id == first.request_id
    assert [r.request_id for r in store.for_ticket(ticket.ticket_id)] == [first.request_id]
    assert publisher.published[0][1].routine == "reset_component"
    assert store.kinds(ticket.ticket_id) == ["diagnostics_requested"]


def test_the_devices_answer_is_recorded_and_decides_nothing() -> None:
    ticket, publisher = wifi_drop(), FakePublisher()
    store = FakeDiagnosticsStore(ticket)
    record = run(store, publisher, ticket.ticket_id, 3)
    # When the device answers that the reset remedied it
    device_answers(store, publisher, record, active_faults=[])
    # Then the answer is on the ticket, which stays open and unflagged (no remote fix claimed,
    # no verification started): "I followed the guide" is still what asks for confirmation
    settled = store.load(ticket.ticket_id, record.request_id).record
    assert settled is not None and settled.outcome is Outcome.NO_ACTION
    after = store.load_ticket(ticket.ticket_id)
    assert after.status is TicketStatus.OPEN and not after.needs_onsite_dispatch
    assert "diagnostics_result" in store.kinds(ticket.ticket_id)


def test_an_unanswered_step_times_out_without_sending_the_ticket_to_dispatch() -> None:
    ticket, publisher = wifi_drop(), FakePublisher()
    store = FakeDiagnosticsStore(ticket)
    record = run(store, publisher, ticket.ticket_id, 3)
    sweep_timeouts(store, record.expires_at + TIMEOUT)
    assert store.load(ticket.ticket_id, record.request_id).record.status is (  # type: ignore[union-attr]
        DiagnosticState.TIMED_OUT
    )
    assert not store.load_ticket(ticket.ticket_id).needs_onsite_dispatch


def test_a_step_without_a_routine_or_out_of_range_runs_nothing() -> None:
    ticket, publisher = wifi_drop(), FakePublisher()
    store = FakeDiagnosticsStore(ticket)
    for step in (1, 4, 9, 0):
        with pytest.raises(NoStepRoutine):
            run(store, publisher, ticket.ticket_id, step)
    assert publisher.published == []


def test_a_code_without_a_self_service_guide_runs_no_step() -> None:
    ticket = make_ticket("EVSE-CABLE-TEMP", thing="ev-ch-0002", model="EV-CH")
    with pytest.raises(NotSelfServiceable):
        run(FakeDiagnosticsStore(ticket), FakePublisher(), ticket.ticket_id, 1)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    handler = load_handler("api", "api_handler")
    wifi, fan = wifi_drop(), fan_stall()
    store = FakeDiagnosticsStore(wifi, fan)
    deps = guide_routes.SelfServiceDeps(
        diagnostics=store,
        devices=Devices({"ic-300-0003": "c-0003", "ac-hp-0004": "c-0003"}),
        publisher=FakePublisher(),
        timeout=TIMEOUT,
    )
    monkeypatch.setattr(guide_routes, "self_service_deps", lambda: deps)

    def post(ticket_id: str, step: int | str, customer: str = "c-0003") -> tuple[int, Any]:
        path = f"/tickets/{ticket_id}/guide-steps/{step}"
        response = handler.app.resolve(http_api_event("POST", path, claims(customer), None), None)
        return response["statusCode"], json.loads(response["body"])

    return post, wifi, fan


def test_the_route_answers_202_with_the_request_and_4xx_with_reasons(api) -> None:
    post, wifi, fan = api
    status, body = post(wifi.ticket_id, 3)
    assert status == 202, body
    assert (body["step"], body["routine"]) == (3, "reset_component")
    assert post(wifi.ticket_id, 3, customer="c-0009")[0] == 404
    status, body = post(wifi.ticket_id, 1)
    assert (status, body["reason"]) == (409, "no_step_routine")
    assert post(fan.ticket_id, 2)[1]["reason"] == "no_step_routine"  # its guide runs nothing
    assert post(wifi.ticket_id, 0)[0] == 422
    assert post(wifi.ticket_id, "x")[0] == 422

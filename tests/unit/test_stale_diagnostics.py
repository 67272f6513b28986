"""No stale actions: diagnostics never act on a ticket that is no longer active (fakes).

A request is recorded only while its ticket is active; a ticket that is resolved or cancelled
cancels its pending requests (the device is told); an answer that comes anyway is parked as
`request_cancelled` and is not replayable.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aftercare.adapters.diagnostics import (
    cancel_transaction,
    create_transaction,
)
from aftercare.domain.diagnostics import auto_diagnose, cancel_pending, start_diagnostic
from aftercare.domain.diagnostics_answers import handle_result_message
from aftercare.domain.diagnostics_plans import plan_cancel
from aftercare.domain.diagnostics_records import PublishFailed, TicketNotActive, requested_entry
from aftercare.domain.inbound import RejectReason
from aftercare.domain.replay import ReplaySkip, plan_replay
from aftercare.domain.rules import load_catalog
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import DiagnosticState, Purpose
from aftercare.models.payloads import DiagnosticsCancel, DiagnosticsEnvelope
from aftercare.models.tickets import TicketStatus

from devices.routines import accept_cancel, respond
from devices.state import DeviceState
from infra.local.event_filter import matches_any
from infra.local.template import load_template
from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.stores import FakeParkedStore

CATALOG = load_catalog()
TIMEOUT = timedelta(minutes=5)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


def engineer_request(store: FakeDiagnosticsStore, publisher: FakePublisher, ticket: Ticket):
    return start_diagnostic(
        store,
        publisher,
        ticket,
        routine="self_test",
        params=None,
        timeout=TIMEOUT,
        actor="user:eng-ada",
        purpose=Purpose.ENGINEER,
        now=NOW,
    )


def close(store: FakeDiagnosticsStore, ticket: Ticket, status: TicketStatus) -> Ticket:
    closed = ticket.model_copy(update={"status": status, "version": ticket.version + 1})
    store.tickets[ticket.ticket_id] = closed
    return closed


def answer_message(thing: str, request_id: str, at: datetime) -> str:
    result = {"request_id": request_id, "status": "passed", "completed_at": at.isoformat()}
    return DiagnosticsEnvelope(
        payload_b64=base64.b64encode(json.dumps(result).encode()).decode(),
        thing=thing,
        received_at=int(at.timestamp() * 1000),
        topic=f"cmd/aftercare/{thing}/diagnostics/res",
    ).model_dump_json()


def deliver(store, publisher, parked, thing, request_id, at=NOW + timedelta(seconds=30)):
    return handle_result_message(
        answer_message(thing, request_id, at),
        "msg-1",
        store=store,
        publisher=publisher,
        parked=parked,
        catalog=CATALOG,
        now=at,
    )


# --------------------------------------------------------------------------- recording


def test_auto_diagnose_acting_on_the_opened_image_of_a_resolved_ticket_sends_nothing(publisher):
    # Given a ticket opened with an auto-diagnose code, and resolved before AutoDiagnose ran
    opened = make_ticket()
    store = FakeDiagnosticsStore(opened)
    close(store, opened, TicketStatus.RESOLVED)
    # When AutoDiagnose acts on the stream image (the ticket as it was when opened)
    with pytest.raises(TicketNotActive) as refused:
        auto_diagnose(store, publisher, opened, timeout=TIMEOUT, now=NOW)
    # Then nothing is recorded and nothing reaches the device; the refusal names the status
    assert refused.value.status is TicketStatus.RESOLVED
    assert not store.records and not publisher.published
    assert store.kinds(opened.ticket_id) == []


def test_an_engineers_request_for_a_ticket_cancelled_meanwhile_is_refused(publisher):
    # Given an engineer looking at an open ticket that someone else cancels
    seen = make_ticket()
    store = FakeDiagnosticsStore(seen)
    close(store, seen, TicketStatus.CANCELLED)
    # When the engineer starts a diagnostic from what they saw
    with pytest.raises(TicketNotActive):
        engineer_request(store, publisher, seen)
    # Then no request exists and none was sent
    assert not store.records and not publisher.published


# --------------------------------------------------------------------------- cancelling


@pytest.mark.parametrize("status", [TicketStatus.RESOLVED, TicketStatus.CANCELLED])
def test_closing_a_ticket_cancels_its_pending_diagnostics_and_tells_the_device(publisher, status):
    # Given a ticket with two pending requests and one already answered
    ticket = make_ticket("TEMP-HIGH", routine="sensor_snapshot")
    store = FakeDiagnosticsStore(ticket)
    answered = engineer_request(store, publisher, ticket)
    store.records[answered.request_id] = answered.model_copy(
        update={"status": DiagnosticState.COMPLETED}
    )
    pending = [engineer_request(store, publisher, ticket) for _ in range(2)]
    # When the ticket is resolved / cancelled and its stream record is handled
    closed = close(store, ticket, status)
    later = NOW + timedelta(seconds=3)
    cancelled = cancel_pending(store, publisher, closed, later)
    # Then both pending requests are cancelled, with when and why, on the timeline too
    assert sorted(r.request_id for r in cancelled) == sorted(p.request_id for p in pending)
    for request in pending:
        stored = store.records[request.request_id]
        assert stored.status is DiagnosticState.CANCELLED
        assert stored.cancelled_at == later and stored.detail == f"ticket {status}"
    assert store.kinds(ticket.ticket_id).count("diagnostics_cancelled") == 2
    # and the device is told, with how long to remember it; the answered one is untouched
    told = {c.request_id: c for thing, c in publisher.cancels if thing == ticket.thing}
    assert set(told) == {p.request_id for p in pending}
    assert all(told[p.request_id].expires_at == p.expires_at for p in pending)
    assert store.records[answered.request_id].status is DiagnosticState.COMPLETED


def test_an_active_ticket_keeps_its_pending_diagnostics(publisher):
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    request = engineer_request(store, publisher, ticket)
    moved = ticket.model_copy(update={"status": TicketStatus.SCHEDULED})
    assert cancel_pending(store, publisher, moved, NOW) == []
    assert store.records[request.request_id].status is DiagnosticState.PENDING
    assert not publisher.cancels


def test_a_cancel_that_cannot_reach_the_device_is_retried_with_the_stream_record(publisher):
    # Given a resolved ticket with a pending request, and a broker that is down
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    request = engineer_request(store, publisher, ticket)
    closed = close(store, ticket, TicketStatus.RESOLVED)
    publisher.failing = True
    # When the cancel fails, then the stream record is retried with the broker back
    with pytest.raises(PublishFailed):
        cancel_pending(store, publisher, closed, NOW)
    assert store.records[request.request_id].status is DiagnosticState.PENDING
    publisher.failing = False
    cancel_pending(store, publisher, closed, NOW)
    # Then the request ends cancelled and the device was told once it could be
    assert store.records[request.request_id].status is DiagnosticState.CANCELLED
    assert [c.request_id for _, c in publisher.cancels] == [request.request_id]


# --------------------------------------------------------------------------- late answers


def test_a_late_answer_to_a_cancelled_request_is_parked_and_not_replayable(publisher):
    # Given a request cancelled with its resolved ticket
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    request = engineer_request(store, publisher, ticket)
    closed = close(store, ticket, TicketStatus.RESOLVED)
    cancel_pending(store, publisher, closed, NOW + timedelta(seconds=1))
    timeline = store.kinds(ticket.ticket_id)
    parked = FakeParkedStore()
    # When the device answers anyway
    outcome = deliver(store, publisher, parked, ticket.thing, request.request_id)
    # Then the answer is parked as request_cancelled, and neither request nor ticket changes
    assert outcome.reason is RejectReason.REQUEST_CANCELLED
    (message,) = parked.parked.values()
    assert message.reason == "request_cancelled" and message.source == "diagnostics"
    assert store.records[request.request_id].status is DiagnosticState.CANCELLED
    assert store.tickets[ticket.ticket_id] == closed and not store.completed
    assert store.kinds(ticket.ticket_id) == timeline
    # and a DLQ replay leaves it where it is
    item = {**message.model_dump(mode="json"), "parked_key": "k-1"}
    assert isinstance(plan_replay(item), ReplaySkip)


def test_an_answer_that_overtakes_the_cancel_is_parked_too(publisher):
    # Given a resolved ticket whose request is still pending (the cancel not handled yet)
    ticket = make_ticket("TEMP-HIGH", routine="sensor_snapshot")
    store = FakeDiagnosticsStore(ticket)
    request = engineer_request(store, publisher, ticket)
    closed = close(store, ticket, TicketStatus.RESOLVED)
    parked = FakeParkedStore()
    # When the answer arrives first
    outcome = deliver(store, publisher, parked, ticket.thing, request.request_id)
    # Then it is parked as request_cancelled, and the cancel still settles the request
    assert outcome.reason is RejectReason.REQUEST_CANCELLED
    assert store.tickets[ticket.ticket_id] == closed and not store.completed
    assert [r.request_id for r in cancel_pending(store, publisher, closed, NOW)] == [
        request.request_id
    ]


# --------------------------------------------------------------------------- the device


def request_bytes(request_id: str, expires_at: datetime) -> bytes:
    return json.dumps(
        {"request_id": request_id, "routine": "self_test", "expires_at": expires_at.isoformat()}
    ).encode()


def cancel_bytes(request_id: str, expires_at: datetime) -> bytes:
    return (
        DiagnosticsCancel(
            request_id=request_id, reason="ticket resolved", cancelled_at=NOW, expires_at=expires_at
        )
        .model_dump_json()
        .encode()
    )


def test_a_device_ignores_a_request_it_was_told_is_cancelled():
    # Given a device told that one request is cancelled (the cancel overtook it)
    state = DeviceState(thing="dev-1", firmware="1.0")
    expires = NOW + TIMEOUT
    assert accept_cancel(state, cancel_bytes("req-cancelled", expires), NOW) is not None
    # When that request and another one arrive
    ignored = respond(state, request_bytes("req-cancelled", expires), NOW)
    answered = respond(state, request_bytes("req-other-1", expires), NOW)
    # Then only the other one is answered
    assert ignored is None
    assert answered is not None and answered.request_id == "req-other-1"


def test_a_device_forgets_a_cancel_once_its_request_has_expired():
    state = DeviceState(thing="dev-1", firmware="1.0")
    expires = NOW + TIMEOUT
    accept_cancel(state, cancel_bytes("req-cancelled", expires), NOW)
    assert state.is_cancelled("req-cancelled", NOW)
    assert not state.is_cancelled("req-cancelled", expires)
    # An expired request is ignored by its expires_at alone
    assert respond(state, request_bytes("req-expired", NOW), NOW) is None


def test_a_device_ignores_a_malformed_cancel():
    state = DeviceState(thing="dev-1", firmware="1.0")
    assert accept_cancel(state, b'{"request_id": "req-1"}', NOW) is None
    assert respond(state, request_bytes("req-12345", NOW + TIMEOUT), NOW) is not None


# --------------------------------------------------------------------------- request shapes


def test_recording_a_request_checks_the_ticket_is_active_in_the_same_transaction(publisher):
    ticket = make_ticket()
    record = engineer_request(FakeDiagnosticsStore(ticket), publisher, ticket)
    items = create_transaction("tickets", record, requested_entry(record))["TransactItems"]
    (check,) = [i["ConditionCheck"] for i in items if "ConditionCheck" in i]
    assert check["Key"] == {"pk": {"S": f"TICKET#{ticket.ticket_id}"}, "sk": {"S": "META"}}
    values = {v["S"] for v in check["ExpressionAttributeValues"].values()}
    assert values == {"open", "diagnosing", "awaiting_parts", "scheduled", "in_repair"}
    assert check["ConditionExpression"].startswith("#status IN (")


def test_a_cancel_only_settles_a_request_that_is_still_pending(publisher):
    ticket = make_ticket()
    record = engineer_request(FakeDiagnosticsStore(ticket), publisher, ticket)
    cancelled, entry = plan_cancel(
        record, ticket.model_copy(update={"status": TicketStatus.RESOLVED}), NOW
    )
    put, timeline = cancel_transaction("tickets", cancelled, entry)["TransactItems"]
    assert put["Put"]["ConditionExpression"] == "#status = :pending"
    assert put["Put"]["Item"]["status"] == {"S": "cancelled"}
    assert "diag_state" not in put["Put"]["Item"]  # out of the sweeper's index
    assert timeline["Put"]["Item"]["kind"] == {"S": "diagnostics_cancelled"}


# --------------------------------------------------------------------------- the trigger


def auto_diagnose_filters() -> list[dict[str, Any]]:
    template = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
    events = template.resources["AutoDiagnoseFunction"].properties["Events"]
    (source,) = [e for e in events.values() if e["Type"] == "DynamoDB"]
    return [json.loads(f["Pattern"]) for f in source["Properties"]["FilterCriteria"]["Filters"]]


def meta_change(old: str, new: str) -> dict[str, Any]:
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "NewImage": {"sk": {"S": "META"}, "status": {"S": new}},
            "OldImage": {"sk": {"S": "META"}, "status": {"S": old}},
        },
    }


@pytest.mark.parametrize(
    ("old", "new", "delivered"),
    [
        ("open", "resolved", True),
        ("in_repair", "resolved", True),
        ("scheduled", "cancelled", True),
        ("open", "scheduled", False),  # still active: nothing to cancel
        ("resolved", "closed", False),  # cancelled already, when it was resolved
    ],
)
def test_autodiagnose_hears_of_every_ticket_that_leaves_the_active_states(old, new, delivered):
    # Given AutoDiagnose's stream filters from the template
    # When a ticket's status changes, by whatever path
    # Then the change reaches AutoDiagnose exactly when the ticket stopped being active
    assert matches_any(auto_diagnose_filters(), meta_change(old, new)) is delivered

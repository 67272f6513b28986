"""Remote diagnostics: requests, answers, remote fixes, parts, timeouts and rejects (fakes)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aftercare.domain.diagnostics import auto_diagnose, start_diagnostic, sweep_timeouts
from aftercare.domain.diagnostics_answers import handle_result
from aftercare.domain.diagnostics_records import (
    ONSITE_FLAG,
    RESULT_GRACE,
    PublishFailed,
    TicketNotActive,
    ticket_of,
)
from aftercare.domain.inbound import RejectReason
from aftercare.domain.rules import load_catalog
from aftercare.models.diagnostics import DiagnosticState, Outcome, Purpose
from aftercare.models.payloads import DiagnosticsEnvelope
from aftercare.models.tickets import Resolution, TicketStatus

from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket

CATALOG = load_catalog()
TIMEOUT = timedelta(minutes=5)


def envelope(thing: str, payload: Any, at: datetime = NOW) -> DiagnosticsEnvelope:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return DiagnosticsEnvelope(
        payload_b64=base64.b64encode(raw).decode(),
        thing=thing,
        received_at=int(at.timestamp() * 1000),
        topic=f"cmd/aftercare/{thing}/diagnostics/res",
    )


def answer(request_id: str, status: str = "passed", **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "status": status,
        "findings": extra.pop("findings", {}),
        "remedied": extra.pop("remedied", False),
        "completed_at": NOW.isoformat(),
        **extra,
    }


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


def start(store, publisher, ticket, routine="self_test", **kwargs):
    return start_diagnostic(
        store,
        publisher,
        ticket,
        routine=routine,
        params=kwargs.pop("params", None),
        timeout=kwargs.pop("timeout", TIMEOUT),
        actor="user:eng-ada",
        purpose=kwargs.pop("purpose", Purpose.ENGINEER),
        now=kwargs.pop("now", NOW),
        **kwargs,
    )


def deliver(store, publisher, thing, payload, at=NOW):
    return handle_result(
        envelope(thing, payload, at),
        store=store,
        publisher=publisher,
        catalog=CATALOG,
        now=at,
    )


# --------------------------------------------------------------------------- starting


def test_a_request_is_stored_pending_then_published(publisher):
    # Given an open ticket
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    # When an engineer runs the ticket's remedy routine
    record = start(store, publisher, ticket, "reset_component")
    # Then the request is pending with its deadline, aimed at the ticket's fault, and published
    assert record.status is DiagnosticState.PENDING
    assert record.expires_at == NOW + TIMEOUT
    assert record.params == {"code": "WIFI-DROP"}
    assert ticket_of(record.request_id) == ticket.ticket_id
    ((thing, request),) = publisher.published
    assert thing == ticket.thing and request.request_id == record.request_id
    assert store.kinds(ticket.ticket_id) == ["diagnostics_requested"]


def test_diagnostics_need_an_active_ticket(publisher):
    ticket = make_ticket(status=TicketStatus.RESOLVED)
    with pytest.raises(TicketNotActive):
        start(FakeDiagnosticsStore(ticket), publisher, ticket)
    assert not publisher.published


def test_an_engineers_request_that_cannot_be_published_is_marked_failed(publisher):
    # Given a broker that cannot be reached
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    publisher.failing = True
    # When an engineer starts a diagnostic
    with pytest.raises(PublishFailed):
        start(store, publisher, ticket)
    # Then it is failed (not left to time out and flag the ticket)
    (record,) = store.records.values()
    assert record.status is DiagnosticState.FAILED
    assert store.kinds(ticket.ticket_id)[-1] == "diagnostics_failed"


def test_auto_diagnosis_runs_once_per_ticket_and_retries_its_publish(publisher):
    # Given a new ticket whose code is marked auto-diagnose, and a failing first publish
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    publisher.failing = True
    with pytest.raises(PublishFailed):
        auto_diagnose(store, publisher, ticket, timeout=TIMEOUT, now=NOW)
    # When the trigger is redelivered (twice)
    publisher.failing = False
    first = auto_diagnose(store, publisher, ticket, timeout=TIMEOUT, now=NOW)
    again = auto_diagnose(store, publisher, ticket, timeout=TIMEOUT, now=NOW)
    # Then there is one request, still pending, published on each redelivery
    assert first is not None and again is not None
    assert first.request_id == again.request_id
    assert len(store.records) == 1 and first.purpose is Purpose.AUTO
    assert [r.request_id for _, r in publisher.published] == [first.request_id] * 2


def test_codes_not_marked_auto_diagnose_start_nothing(publisher):
    ticket = make_ticket(auto_diagnose=False)
    store = FakeDiagnosticsStore(ticket)
    assert auto_diagnose(store, publisher, ticket, timeout=TIMEOUT, now=NOW) is None
    assert not store.records and not publisher.published


# --------------------------------------------------------------------------- remote fixes


def test_a_verified_remedy_resolves_the_ticket_remotely(publisher):
    # Given a remotely fixable fault and a remedy request
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    remedy = start(store, publisher, ticket, "reset_component")
    # When the device reports the fault cleared
    later = NOW + timedelta(seconds=1)
    cleared = {"component": "wifi", "cleared": ["WIFI-DROP"], "remaining": []}
    outcome = deliver(
        store,
        publisher,
        ticket.thing,
        answer(remedy.request_id, remedied=True, findings=cleared),
        later,
    )
    # Then a verification self-test goes out, and the ticket is still open
    assert outcome.outcome is Outcome.VERIFYING and outcome.follow_up
    assert publisher.published[-1][1].routine == "self_test"
    assert store.tickets[ticket.ticket_id].status is TicketStatus.OPEN
    # When the self-test shows the fault gone
    verified = deliver(
        store,
        publisher,
        ticket.thing,
        answer(outcome.follow_up, findings={"active_faults": [], "checks": {}}),
        later + timedelta(seconds=1),
    )
    # Then the ticket is resolved remotely (which releases its held parts) and counted so
    assert verified.outcome is Outcome.REMOTE_FIX
    resolved = store.tickets[ticket.ticket_id]
    assert resolved.status is TicketStatus.RESOLVED
    assert resolved.resolution is Resolution.REMOTE
    change = store.completed[-1].status_change
    assert change is not None and change.releases_lock
    assert "status_changed" in store.kinds(ticket.ticket_id)


def test_a_verification_that_still_sees_the_fault_flags_on_site_dispatch(publisher):
    ticket = make_ticket("FAN-STALL", thing="ac-hp-0004", model="AC-HP", routine="self_test")
    store = FakeDiagnosticsStore(ticket)
    remedy = start(store, publisher, ticket, "reset_component")
    outcome = deliver(store, publisher, ticket.thing, answer(remedy.request_id, remedied=True))
    # When the verification still lists the ticket's fault
    failed = deliver(
        store,
        publisher,
        ticket.thing,
        answer(outcome.follow_up, "failed", findings={"active_faults": ["FAN-STALL"]}),
    )
    # Then the ticket stays open, flagged for a visit
    assert failed.outcome is Outcome.REMOTE_FIX_FAILED
    after = store.tickets[ticket.ticket_id]
    assert after.status is TicketStatus.OPEN and ONSITE_FLAG in after.flags


def test_a_remedy_that_clears_nothing_flags_on_site_dispatch(publisher):
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    remedy = start(store, publisher, ticket, "reset_component")
    outcome = deliver(
        store,
        publisher,
        ticket.thing,
        answer(remedy.request_id, "failed", findings={"remaining": ["WIFI-DROP"]}),
    )
    assert outcome.outcome is Outcome.REMOTE_FIX_FAILED
    assert store.tickets[ticket.ticket_id].flags == [ONSITE_FLAG]
    assert len(publisher.published) == 1  # no verification


# --------------------------------------------------------------------------- parts


def test_a_failed_routine_pointing_at_other_parts_updates_suggested_parts(publisher):
    # Given a thermal ticket (no parts) on a device that also has a stalled fan
    ticket = make_ticket("TEMP-HIGH", thing="ac-hp-0004", model="AC-HP", routine="self_test")
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket)
    # When its self-test fails and lists both faults, and the device names a part itself
    findings = {"active_faults": ["FAN-STALL", "TEMP-HIGH"], "suspect_parts": ["SENSOR-NTC-10K"]}
    outcome = deliver(
        store, publisher, ticket.thing, answer(request.request_id, "failed", findings=findings)
    )
    # Then the ticket's suggested parts gain the fan and the sensor, with a timeline entry
    assert outcome.outcome is Outcome.PARTS_SUGGESTED
    skus = [p.sku for p in store.tickets[ticket.ticket_id].suggested_parts]
    assert skus == ["FAN-80MM", "SENSOR-NTC-10K"]
    assert "parts_suggested" in store.kinds(ticket.ticket_id)


def test_a_passing_routine_changes_nothing_on_the_ticket(publisher):
    ticket = make_ticket("TEMP-HIGH", routine="sensor_snapshot")
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket, "sensor_snapshot")
    outcome = deliver(store, publisher, ticket.thing, answer(request.request_id))
    assert outcome.outcome is Outcome.NO_ACTION
    assert store.tickets[ticket.ticket_id] == ticket
    assert store.records[request.request_id].status is DiagnosticState.COMPLETED


# --------------------------------------------------------------------------- rejects


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        (b"\xff\xfe", RejectReason.NOT_UTF8),
        ({"request_id": "x" * 8, "status": "passed", "completed_at": NOW.isoformat(), "extra": 1},
         RejectReason.UNKNOWN_FIELD),
        ({"request_id": "x" * 8, "status": "great", "completed_at": NOW.isoformat()},
         RejectReason.SCHEMA_VIOLATION),
        (answer("T-NOSUCHTICKET_0123"), RejectReason.UNKNOWN_REQUEST),
        (answer("no-ticket-in-this-id"), RejectReason.UNKNOWN_REQUEST),
    ],
)  # fmt: skip
def test_invalid_answers_are_rejected_with_their_reason(publisher, payload, reason):
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    outcome = deliver(store, publisher, ticket.thing, payload)
    assert outcome.reason is reason
    assert not store.completed


def test_an_answer_from_another_device_is_rejected_and_changes_nothing(publisher):
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket, "reset_component")
    outcome = deliver(store, publisher, "rt-x-0002", answer(request.request_id, remedied=True))
    assert outcome.reason is RejectReason.THING_MISMATCH
    assert store.records[request.request_id].status is DiagnosticState.PENDING


def test_a_second_answer_is_a_duplicate(publisher):
    ticket = make_ticket("TEMP-HIGH", routine="sensor_snapshot")
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket, "sensor_snapshot")
    deliver(store, publisher, ticket.thing, answer(request.request_id))
    again = deliver(store, publisher, ticket.thing, answer(request.request_id, "failed"))
    assert again.reason is RejectReason.DUPLICATE_ANSWER
    assert store.records[request.request_id].result.status.value == "passed"


def test_an_answer_after_the_deadline_is_late_and_changes_nothing(publisher):
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket, "reset_component", timeout=timedelta(seconds=10))
    late = NOW + timedelta(seconds=10) + RESULT_GRACE + timedelta(seconds=1)
    outcome = deliver(
        store, publisher, ticket.thing, answer(request.request_id, remedied=True), late
    )
    assert outcome.reason is RejectReason.LATE_ANSWER
    assert store.records[request.request_id].status is DiagnosticState.PENDING
    assert store.tickets[ticket.ticket_id].status is TicketStatus.OPEN


def test_a_concurrent_change_is_retried_with_a_fresh_read(publisher):
    ticket = make_ticket("TEMP-HIGH", routine="sensor_snapshot")
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket, "sensor_snapshot")
    store.conflicts = 1
    outcome = deliver(store, publisher, ticket.thing, answer(request.request_id))
    assert outcome.outcome is Outcome.NO_ACTION and len(store.completed) == 1


# --------------------------------------------------------------------------- timeouts


def test_unanswered_requests_time_out_and_flag_the_ticket(publisher):
    # Given a request with a 10 s deadline nobody answers
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    request = start(store, publisher, ticket, "reset_component", timeout=timedelta(seconds=10))
    # When the sweeper runs before and after the deadline (plus grace)
    before = sweep_timeouts(store, NOW + timedelta(seconds=10))
    after = sweep_timeouts(store, NOW + timedelta(seconds=10) + RESULT_GRACE * 2)
    # Then only the second sweep times it out, flagging the ticket for a visit
    assert (before, after) == (0, 1)
    record = store.records[request.request_id]
    assert record.status is DiagnosticState.TIMED_OUT and record.outcome is Outcome.TIMED_OUT
    assert store.tickets[ticket.ticket_id].flags == [ONSITE_FLAG]
    assert store.kinds(ticket.ticket_id)[-2:] == ["diagnostics_timed_out", "flagged"]
    # And an answer arriving now is late
    late = deliver(store, publisher, ticket.thing, answer(request.request_id, remedied=True))
    assert late.reason is RejectReason.LATE_ANSWER


def test_the_demo_summary_counts_outcomes_and_latency_percentiles(publisher):
    from infra.diag_summary import percentile, summarise_records

    ticket = make_ticket("TEMP-HIGH", routine="sensor_snapshot")
    store = FakeDiagnosticsStore(ticket)
    first = start(store, publisher, ticket, "sensor_snapshot")
    start(store, publisher, ticket, "sensor_snapshot", timeout=timedelta(seconds=5))
    deliver(store, publisher, ticket.thing, answer(first.request_id), NOW + timedelta(seconds=2))
    sweep_timeouts(store, NOW + timedelta(minutes=1))
    summary = summarise_records(list(store.records.values()))
    assert summary["diagnostics_by_status"] == {"completed": 1, "timed_out": 1}
    assert summary["diagnostics_timed_out"] == 1 and summary["remote_fixes"] == 0
    assert summary["diagnostics_latency_p50_ms"] == 2000
    assert percentile(list(range(1, 101)), 0.99) == 99 and percentile([], 0.5) is None

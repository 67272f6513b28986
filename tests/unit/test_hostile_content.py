"""Content errors are validation rejects, parked once with a reason: never retried, never stored
as something else (finding 3 of "Nothing lost, nothing leaked")."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from aftercare.domain.diagnostics_answers import decode_result, handle_result_message
from aftercare.domain.inbound import Rejected, RejectReason
from aftercare.domain.intake import IntakeRules, OutcomeKind
from aftercare.domain.messages import handle_fault_message
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.payloads import DiagnosticsEnvelope

from tests.fakes.diagnostics import NOW as DIAG_NOW
from tests.fakes.diagnostics import FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.faults import FAULT_TOPIC, THING, envelope_body, store_with_device
from tests.fakes.stores import FakeParkedStore, FakeTicketStore

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REPORT = (
    '{"fault_id": "fault-0001", "code": "FAN-STALL", "occurred_at": "2026-11-27T11:59:00+00:00",'
    ' "firmware": "1.0.0", "readings": {"rpm": READING}}'
)

# (raw JSON text, the reason it must be parked with, words its detail must contain)
HOSTILE_FAULTS = [
    # 8,000 levels: the deepest that fits a fault's 16 KiB (10,000 is `payload_too_large`)
    ("[" * 8_000 + "]" * 8_000, "malformed_json", "nested more than"),
    ('{"a":' * 2_500 + "1" + "}" * 2_500, "malformed_json", "nested more than"),
    (REPORT.replace("READING", "9" * 4301), "schema_violation", "integer of 4301 digits"),
    (REPORT.replace("READING", "1e300"), "schema_violation", "outside the storable range"),
    (REPORT.replace("READING", "1e-300"), "schema_violation", "outside the storable range"),
    (REPORT.replace("READING", "1." + "2" * 38), "schema_violation", "significant digits"),
    (REPORT.replace("READING", "1" * 39), "schema_violation", "integer of 39 digits"),
    (REPORT.replace("READING", "NaN"), "malformed_json", "NaN is not a JSON number"),
    (REPORT.replace("READING", "Infinity"), "malformed_json", "Infinity is not a JSON number"),
    (REPORT.replace("READING", "1e400"), "schema_violation", "outside the storable range"),
    (
        REPORT.replace("READING", "1").replace('"2026-11-27T11:59:00+00:00"', "1795780740"),
        "schema_violation",
        "RFC 3339",
    ),
    (
        REPORT.replace("READING", "1").replace('"firmware"', '"code": "PSU-OVERVOLT", "firmware"'),
        "malformed_json",
        "dup",
    ),
]


@pytest.fixture
def store() -> FakeTicketStore:
    return store_with_device()


@pytest.mark.parametrize(("text", "reason", "says"), HOSTILE_FAULTS)
def test_hostile_fault_is_parked_once_with_its_reason(store, text, reason, says):
    rules = IntakeRules(catalog=load_catalog(), policy=load_policy(), repeat_window=timedelta(1))
    parked = FakeParkedStore()
    # When the hostile report is taken off the fault queue
    outcome = handle_fault_message(
        envelope_body(text, THING, FAULT_TOPIC, NOW),
        "m-1",
        store=store,
        parked=parked,
        rules=rules,
        now=NOW,
    )
    # Then it is a reject (acknowledged, never retried), parked once with its specific reason
    assert outcome.kind is OutcomeKind.REJECTED and outcome.reason == RejectReason(reason)
    assert says in (outcome.detail or "")
    assert [p.reason for p in parked.writes] == [reason]
    assert not store.tickets


ANSWER = (
    '{"request_id": "RID", "status": "failed", "completed_at": "2026-11-27T12:00:00+00:00",'
    ' "findings": {"v": VALUE}}'
)


@pytest.mark.parametrize(
    ("value", "reason", "says"),
    [
        ("[" * 10_000 + "]" * 10_000, "malformed_json", "nested more than"),
        ("9" * 4301, "schema_violation", "integer of 4301 digits"),
        ("1e300", "schema_violation", "outside the storable range"),
        ("1e-300", "schema_violation", "outside the storable range"),
        ("1." + "2" * 38, "schema_violation", "significant digits"),
        ("NaN", "malformed_json", "NaN"),
        ("Infinity", "malformed_json", "Infinity"),
        ("1e400", "schema_violation", "outside the storable range"),
    ],
)
def test_hostile_diagnostics_answer_is_parked_with_its_reason(value, reason, says):
    ticket = make_ticket()
    store = FakeDiagnosticsStore(ticket)
    parked = FakeParkedStore()
    text = ANSWER.replace("RID", f"{ticket.ticket_id}_abcdef12").replace("VALUE", value)
    topic = f"cmd/aftercare/{ticket.thing}/diagnostics/res"
    body = envelope_body(text, ticket.thing, topic, DIAG_NOW)
    outcome = handle_result_message(
        body,
        "m-1",
        store=store,
        publisher=FakePublisher(),
        parked=parked,
        catalog=load_catalog(),
        now=DIAG_NOW,
    )
    assert outcome.reason == RejectReason(reason)
    assert says in (outcome.detail or "")
    assert [p.reason for p in parked.writes] == [reason]
    assert not store.completed


def test_completed_at_as_epoch_number_is_a_schema_violation():
    ticket = make_ticket()
    text = ANSWER.replace("RID", f"{ticket.ticket_id}_abcdef12").replace("VALUE", "1")
    text = text.replace('"2026-11-27T12:00:00+00:00"', str(int(DIAG_NOW.timestamp())))
    envelope = DiagnosticsEnvelope(
        payload_b64=base64.b64encode(text.encode()).decode(),
        thing=ticket.thing,
        received_at=int(DIAG_NOW.timestamp() * 1000),
        topic="t",
    )
    with pytest.raises(Rejected) as caught:
        decode_result(envelope)
    assert caught.value.reason is RejectReason.SCHEMA_VIOLATION

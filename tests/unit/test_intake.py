"""Fault intake domain: validation, dedup, correlation, repeats, priority/SLA (with fakes)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from aftercare.domain.inbound import RejectReason
from aftercare.domain.intake import IntakeRules, OutcomeKind, intake_fault
from aftercare.domain.lifecycle import change_status
from aftercare.domain.ports import CustomerRecord
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.payloads import FaultEnvelope
from aftercare.models.tickets import TicketStatus

from tests.fakes.faults import store_with_device
from tests.fakes.stores import FakeTicketStore

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> FakeTicketStore:
    s = store_with_device()
    s.devices["ac-0002"] = s.devices["ac-0001"].model_copy(
        update={"thing": "ac-0002", "customer_id": "c-vip", "warranty_until": date(2026, 1, 1)}
    )
    s.customers["c-std"] = CustomerRecord(customer_id="c-std", name="Std", tier="standard")
    s.customers["c-vip"] = CustomerRecord(customer_id="c-vip", name="Vip", tier="vip")
    return s


@pytest.fixture
def rules() -> IntakeRules:
    return IntakeRules(
        catalog=load_catalog(), policy=load_policy(), repeat_window=timedelta(days=30)
    )


def envelope(payload: object, thing: str = "ac-0001", at: datetime = NOW) -> FaultEnvelope:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return FaultEnvelope(
        payload_b64=base64.b64encode(raw).decode(),
        thing=thing,
        received_at=int(at.timestamp() * 1000),
        topic=f"dt/aftercare/{thing}/fault",
    )


def report(
    fault_id: str = "fault-0001", code: str = "FAN-STALL", at: datetime = NOW, **extra: object
) -> dict:
    return {
        "fault_id": fault_id,
        "code": code,
        "occurred_at": (at - timedelta(seconds=5)).isoformat(),
        "firmware": "1.0.0",
        "readings": {"rpm": 0, "temp_c": 71.5},
        **extra,
    }


def test_new_fault_opens_one_prioritised_ticket(store, rules):
    # Given a registered in-warranty device of a standard customer
    # When it reports a major fault
    outcome = intake_fault(envelope(report()), store, rules)
    # Then one open ticket exists with priority and SLA from the policy
    assert outcome.kind is OutcomeKind.OPENED
    ticket = store.tickets[outcome.ticket_id]
    assert ticket.status is TicketStatus.OPEN and ticket.priority == "P2"
    assert ticket.sla_response_due == NOW + timedelta(hours=4)
    assert [p.model_dump() for p in ticket.suggested_parts] == [{"sku": "FAN-80MM", "qty": 1}]
    assert store.timeline[ticket.ticket_id][0].kind == "opened"


def test_vip_out_of_warranty_gets_vip_sla(store, rules):
    # Given a VIP customer's device out of warranty
    # When it reports a major fault
    outcome = intake_fault(envelope(report(), thing="ac-0002"), store, rules)
    # Then the priority counts the tier and the SLA is the VIP one
    ticket = store.tickets[outcome.ticket_id]
    assert (ticket.priority, ticket.customer_tier, ticket.in_warranty) == ("P1", "vip", False)
    assert ticket.sla_response_due == NOW + timedelta(minutes=30)


def test_same_fault_id_redelivered_changes_nothing(store, rules):
    # Given a fault already accepted
    first = intake_fault(envelope(report()), store, rules)
    # When it is delivered four more times
    again = [intake_fault(envelope(report()), store, rules) for _ in range(4)]
    # Then there is one ticket with one occurrence
    assert all(o.kind is OutcomeKind.DUPLICATE for o in again)
    assert all(o.ticket_id == first.ticket_id for o in again)
    assert len(store.tickets) == 1 and store.tickets[first.ticket_id].occurrences == 1


def test_new_report_of_open_code_correlates(store, rules):
    # Given an open ticket for FAN-STALL on a device
    first = intake_fault(envelope(report("fault-0001")), store, rules)
    # When 49 more distinct reports of that code arrive
    for n in range(2, 51):
        outcome = intake_fault(envelope(report(f"fault-{n:04d}")), store, rules)
        assert outcome.kind is OutcomeKind.CORRELATED
    # Then there is one ticket with 50 occurrences
    assert len(store.tickets) == 1
    assert store.tickets[first.ticket_id].occurrences == 50
    assert len(store.occurrences[first.ticket_id]) == 50


def test_older_occurrence_does_not_replace_latest_readings(store, rules):
    # Given an open ticket whose last report is recent
    first = intake_fault(envelope(report("fault-0001")), store, rules)
    # When an older report arrives late
    late = report("fault-0002", readings={"rpm": 999})
    late["occurred_at"] = (NOW - timedelta(hours=2)).isoformat()
    intake_fault(envelope(late), store, rules)
    # Then the count grows but the latest readings stay those of the newest report
    ticket = store.tickets[first.ticket_id]
    assert ticket.occurrences == 2 and ticket.latest_readings["rpm"] == 0


def test_recurrence_within_window_opens_linked_repeat(store, rules):
    # Given a ticket resolved ten days ago
    ten_days_ago = NOW - timedelta(days=10)
    first = intake_fault(
        envelope(report("fault-0001", at=ten_days_ago), at=ten_days_ago), store, rules
    )
    change_status(
        store,
        first.ticket_id,
        TicketStatus.RESOLVED,
        actor="eng",
        reason="fixed",
        now=NOW - timedelta(days=10),
    )
    # When the same code is reported again
    outcome = intake_fault(envelope(report("fault-0002")), store, rules)
    # Then a new ticket opens, marked as a repeat of the first, and the first records the link
    assert outcome.kind is OutcomeKind.OPENED and outcome.repeat_of == first.ticket_id
    assert store.tickets[outcome.ticket_id].repeat_of == first.ticket_id
    assert store.timeline[first.ticket_id][-1].kind == "repeat_reported"


def test_recurrence_after_window_is_not_a_repeat(store, rules):
    # Given a ticket resolved 40 days ago
    old = NOW - timedelta(days=40)
    first = intake_fault(envelope(report("fault-0001", at=old), at=old), store, rules)
    change_status(store, first.ticket_id, TicketStatus.RESOLVED, actor="e", reason="r", now=old)
    # When the code recurs now
    outcome = intake_fault(envelope(report("fault-0002")), store, rules)
    # Then the new ticket is not a repeat
    assert outcome.kind is OutcomeKind.OPENED and outcome.repeat_of is None


def test_unknown_code_becomes_unclassified_ticket(store, rules):
    # When a device reports a code the catalog does not know
    outcome = intake_fault(envelope(report(code="NEW-FW-CODE")), store, rules)
    # Then it is kept as an unclassified ticket that needs triage
    ticket = store.tickets[outcome.ticket_id]
    assert outcome.unclassified and ticket.unclassified and ticket.category == "unclassified"
    assert "unclassified" in store.timeline[ticket.ticket_id][0].detail


@pytest.mark.parametrize(
    ("payload", "thing", "reason"),
    [
        (b"{not json", "ac-0001", RejectReason.MALFORMED_JSON),
        (b"\xff\xfe", "ac-0001", RejectReason.NOT_UTF8),
        (b"[1, 2]", "ac-0001", RejectReason.NOT_AN_OBJECT),
        (b"x" * (16 * 1024 + 1), "ac-0001", RejectReason.PAYLOAD_TOO_LARGE),
        ({**report(), "colour": "red"}, "ac-0001", RejectReason.UNKNOWN_FIELD),
        ({**report(), "severity": "apocalyptic"}, "ac-0001", RejectReason.SCHEMA_VIOLATION),
        ({**report(), "fault_id": "x"}, "ac-0001", RejectReason.SCHEMA_VIOLATION),
        ({**report(), "thing": "ac-0002"}, "ac-0001", RejectReason.THING_MISMATCH),
        (report(), "ghost-9999", RejectReason.UNKNOWN_DEVICE),
        (
            {**report(), "occurred_at": (NOW - timedelta(days=31)).isoformat()},
            "ac-0001",
            RejectReason.STALE_REPORT,
        ),
        (
            {**report(), "occurred_at": (NOW + timedelta(days=2)).isoformat()},
            "ac-0001",
            RejectReason.FUTURE_TIMESTAMP,
        ),
        (
            {**report(), "occurred_at": "2026-11-27T12:00:00"},
            "ac-0001",
            RejectReason.SCHEMA_VIOLATION,
        ),
    ],
)
def test_bad_reports_are_rejected_with_a_specific_reason(store, rules, payload, thing, reason):
    # When a bad report arrives
    outcome = intake_fault(envelope(payload, thing=thing), store, rules)
    # Then it is rejected with that reason and nothing is written
    assert outcome.kind is OutcomeKind.REJECTED and outcome.reason is reason
    assert outcome.detail
    assert not store.tickets


def test_request_budget_new_and_duplicate(store, rules):
    # When a new fault is applied, then the same fault again
    intake_fault(envelope(report()), store, rules)
    new_cost = store.requests
    intake_fault(envelope(report()), store, rules)
    # Then the new one costs 3 store requests and the duplicate 1
    assert new_cost == 3 and store.requests - new_cost == 1

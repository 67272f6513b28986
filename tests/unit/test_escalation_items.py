"""The SLA escalation tracker lives on the ticket item: the request shapes that keep it there,
advance it once and take it out of the sparse index."""

from __future__ import annotations

from datetime import timedelta

from aftercare.adapters.escalation import advance_items, advance_update, tracker_from_item
from aftercare.adapters.ticket_writes import status_change_items
from aftercare.domain.escalation import first_tracker, load_escalation, plan_escalation
from aftercare.domain.ports.records import EscalationTracker
from aftercare.domain.tickets import Ticket, plan_status_change
from aftercare.models.tickets import TicketStatus

from tests.fakes.diagnostics import NOW, make_ticket

POLICY = load_escalation()
TABLE = "tickets"


def ticket(status: TicketStatus = TicketStatus.OPEN) -> Ticket:
    return make_ticket("PSU-OVERVOLT", status=status).model_copy(
        update={
            "sla_response_due": NOW + timedelta(hours=4),
            "sla_resolution_due": NOW + timedelta(hours=24),
        }
    )


def tracker() -> EscalationTracker:
    found = first_tracker(ticket(), POLICY)
    assert found is not None
    return found


def test_acting_steps_is_one_ticket_update_guarded_by_index_and_version() -> None:
    # When the first two response steps act
    plan = plan_escalation(ticket(), tracker(), POLICY, NOW + timedelta(hours=3))
    update, *entries = advance_items(TABLE, plan)
    request = update.request["Update"]
    # Then the ticket's own item advances (no other item) on both conditions, with the flags
    assert request["Key"]["sk"] == {"S": "META"}
    assert request["ConditionExpression"] == "esc_index = :seen AND version = :version"
    assert request["ExpressionAttributeValues"][":seen"] == {"N": "0"}
    assert request["ExpressionAttributeValues"][":i"] == {"N": "2"}
    assert "flags = :flags" in request["UpdateExpression"]
    assert "REMOVE" not in request["UpdateExpression"]
    assert len(entries) == 2 and all("Put" in e.request for e in entries)


def test_skipping_stale_steps_touches_only_the_escalation_attributes() -> None:
    # Given a ticket taken up before its response steps fell due
    plan = plan_escalation(
        ticket(TicketStatus.SCHEDULED), tracker(), POLICY, NOW + timedelta(hours=5)
    )
    request = advance_update(TABLE, plan)
    # Then only the index moves on, guarded by the index read (no version, no updated_at)
    assert request["ConditionExpression"] == "esc_index = :seen"
    assert request["UpdateExpression"] == "SET esc_index = :i, esc_next_at = :t"
    assert advance_items(TABLE, plan)[1:] == []


def test_a_finished_schedule_removes_the_attributes() -> None:
    plan = plan_escalation(
        ticket(TicketStatus.RESOLVED), tracker(), POLICY, NOW + timedelta(days=2)
    )
    request = advance_update(TABLE, plan)
    assert request["UpdateExpression"] == "REMOVE esc_index, esc_bucket, esc_next_at"
    assert request["ConditionExpression"] == "esc_index = :seen"


def test_resolving_or_cancelling_takes_the_ticket_out_of_the_index() -> None:
    def expression(status: TicketStatus, target: TicketStatus) -> str:
        change = plan_status_change(ticket(status), target, actor="e", reason="r", now=NOW)
        return str(status_change_items(TABLE, change)[0].request["Update"]["UpdateExpression"])

    assert expression(TicketStatus.OPEN, TicketStatus.RESOLVED).endswith(
        " REMOVE esc_index, esc_bucket, esc_next_at"
    )
    assert "REMOVE esc_index" in expression(TicketStatus.OPEN, TicketStatus.CANCELLED)
    # while a change between active states keeps the schedule
    assert "REMOVE" not in expression(TicketStatus.OPEN, TicketStatus.DIAGNOSING)


def test_an_index_entry_reads_back_as_its_tracker() -> None:
    first = tracker()
    entry = {
        "pk": f"TICKET#{first.ticket_id}",
        "sk": "META",
        "esc_bucket": first.bucket,
        "esc_next_at": first.next_epoch,
        "esc_index": 0,
    }
    assert tracker_from_item(entry) == first

"""The SLA escalation tracker lives on the ticket item: the request shapes that keep it there,
advance it once and take it out of the sparse index."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from aftercare.adapters.aws import to_item
from aftercare.adapters.escalation import (
    DynamoEscalations,
    advance_items,
    advance_update,
    tracker_attributes,
    tracker_from_item,
)
from aftercare.adapters.ticket_items import ticket_item
from aftercare.adapters.ticket_writes import status_change_items
from aftercare.domain.escalation import (
    first_tracker,
    load_escalation,
    plan_escalation,
    sweep_escalations,
)
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


class RecordingDynamo:
    """A DynamoDB client holding one ticket item: counts the requests and the items read."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = to_item(item)
        self.requests: Counter[str] = Counter()
        self.items_read = 0

    def query(self, **request: Any) -> dict[str, Any]:
        self.requests["Query"] += 1
        values = request["ExpressionAttributeValues"]
        due = self.item.get("esc_bucket") == values[":b"] and int(
            self.item["esc_next_at"]["N"]
        ) <= int(values[":now"]["N"])
        keys = ("pk", "sk", "esc_bucket", "esc_next_at", "esc_index")
        found = [{k: self.item[k] for k in keys}] if due else []
        self.items_read += len(found)
        return {"Items": found}

    def get_item(self, **request: Any) -> dict[str, Any]:
        self.requests["GetItem"] += 1
        self.items_read += 1
        return {"Item": self.item}

    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        self.requests["TransactWriteItems"] += 1
        return {}

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests["UpdateItem"] += 1
        return {}


class Pager:
    def __init__(self) -> None:
        self.pages: list[str] = []

    def page(self, message: str) -> None:
        self.pages.append(message)


def sweep_once(status: TicketStatus) -> RecordingDynamo:
    record = ticket(status)
    ddb = RecordingDynamo({**ticket_item(record), **tracker_attributes(tracker())})
    store = DynamoEscalations(tickets_table=TABLE, ddb=ddb)
    sweep_escalations(store, Pager(), POLICY, NOW + timedelta(hours=3))
    return ddb


def test_request_budget_of_a_sweep_that_acts() -> None:
    # When a sweep finds one ticket with two steps due
    ddb = sweep_once(TicketStatus.OPEN)
    # Then it costs a Query per bucket, the ticket's own item (not its partition) and one
    # transaction (the ticket's update with the timeline entries)
    assert ddb.requests == {"Query": 8, "GetItem": 1, "TransactWriteItems": 1}
    assert ddb.items_read == 2


def test_request_budget_of_a_sweep_that_only_skips_stale_steps() -> None:
    # When the ticket left open before its response steps fell due
    ddb = sweep_once(TicketStatus.DIAGNOSING)
    # Then the advance is one UpdateItem (1 WRU), not a one-item transaction (2 WRU)
    assert ddb.requests == {"Query": 8, "GetItem": 1, "UpdateItem": 1}

"""Dispatch decisions on TicketsTable (moto, table from template.yaml): one version-guarded
transaction writes the state, the status, the flag and the timeline entry, or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.dispatch_marks import (
    DynamoDispatchMarks,
    DynamoFixHistory,
    DynamoLeadTimes,
    DynamoWaitingTickets,
)
from aftercare.adapters.inventory import part_key
from aftercare.adapters.ticket_items import ticket_item, visit_put
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.adapters.transactions import transact
from aftercare.domain.dispatch import FirstTimeFix
from aftercare.domain.dispatch_waiting import wake_waiting
from aftercare.domain.ports.dispatch import DispatchMark, DispatchState
from aftercare.domain.ports.errors import ConcurrentUpdate
from aftercare.models.field import BookingStatus
from aftercare.models.tickets import TicketFlag, TicketStatus, TimelineEntry
from aftercare.models.visits import VisitOutcome, VisitRecord
from moto import mock_aws

from tests.fakes.aws import use_fake_credentials
from tests.fakes.diagnostics import make_ticket
from tests.fakes.tables import create_template_tables

TICKETS = "aftercare-tickets-test"
NOW = datetime(2026, 12, 7, 8, tzinfo=UTC)


@pytest.fixture
def ddb() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        use_fake_credentials(patch)
        with mock_aws():
            client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
            create_template_tables(client, ("TicketsTable", "InventoryTable"))
            yield client


def entry(kind: str, minute: int = 0) -> TimelineEntry:
    return TimelineEntry(
        at=NOW.replace(minute=minute), kind=kind, actor="dispatcher", detail={"n": 1}
    )


def test_a_decision_lands_with_its_timeline_entry_and_status(ddb: Any) -> None:
    # Given an open ticket
    ticket = make_ticket("FAN-STALL", model="AC-HP")
    ddb.put_item(TableName=TICKETS, Item=to_item(ticket_item(ticket)))
    marks = DynamoDispatchMarks(tickets_table=TICKETS, ddb=ddb)
    # When an engineer's request is recorded, then a booking
    marks.mark_dispatch(
        DispatchMark(
            ticket=ticket, state=DispatchState.WANTED, entry=entry("dispatch_requested"), flag=True
        )
    )
    reader = DynamoTicketReader(tickets_table=TICKETS, ddb=ddb)
    wanted = reader.get_ticket(ticket.ticket_id).ticket
    marks.mark_dispatch(
        DispatchMark(
            ticket=wanted,
            state=DispatchState.BOOKED,
            entry=entry("dispatch_booked", 1),
            to_status=TicketStatus.SCHEDULED,
        )
    )
    # Then the ticket carries both, in order, with its version moved twice
    detail = reader.get_ticket(ticket.ticket_id)
    assert detail.ticket.dispatch_state == "booked"
    assert detail.ticket.status is TicketStatus.SCHEDULED
    assert detail.ticket.flags == [TicketFlag.NEEDS_ONSITE_DISPATCH]
    assert detail.ticket.version == ticket.version + 2
    assert [e.kind for e in detail.timeline] == ["dispatch_requested", "dispatch_booked"]


def test_a_stale_decision_writes_nothing(ddb: Any) -> None:
    ticket = make_ticket("FAN-STALL", model="AC-HP")
    ddb.put_item(TableName=TICKETS, Item=to_item(ticket_item(ticket)))
    marks = DynamoDispatchMarks(tickets_table=TICKETS, ddb=ddb)
    marks.mark_dispatch(
        DispatchMark(ticket=ticket, state=DispatchState.AWAITING_CUSTOMER, entry=entry("a"))
    )
    # When a decision based on the old version arrives
    with pytest.raises(ConcurrentUpdate):
        marks.mark_dispatch(
            DispatchMark(ticket=ticket, state=DispatchState.BOOKED, entry=entry("b"))
        )
    # Then neither its state nor its timeline entry were written
    detail = DynamoTicketReader(tickets_table=TICKETS, ddb=ddb).get_ticket(ticket.ticket_id)
    assert detail.ticket.dispatch_state == "awaiting_customer"
    assert [e.kind for e in detail.timeline] == ["a"]


def test_lead_times_come_from_the_parts_master(ddb: Any) -> None:
    table = "aftercare-inventory-test"
    ddb.put_item(
        TableName=table,
        Item=to_item({**part_key("FAN-80MM"), "sku": "FAN-80MM", "lead_time_days": 7}),
    )
    lead = DynamoLeadTimes(inventory_table=table, ddb=ddb)
    assert lead.lead_days(["FAN-80MM", "NOPE", "FAN-80MM"]) == {"FAN-80MM": 7}
    assert lead.lead_days([]) == {}


def test_a_delivery_wakes_the_tickets_waiting_for_the_part_once(ddb: Any) -> None:
    # Given a ticket recorded as waiting for a backordered fan
    ticket = make_ticket("FAN-STALL", model="AC-HP")
    ddb.put_item(TableName=TICKETS, Item=to_item(ticket_item(ticket)))
    DynamoDispatchMarks(tickets_table=TICKETS, ddb=ddb).mark_dispatch(
        DispatchMark(
            ticket=ticket,
            state=DispatchState.AWAITING_PARTS,
            entry=entry("dispatch_awaiting_parts"),
            waiting_skus=("FAN-80MM",),
        )
    )
    waiting = DynamoWaitingTickets(tickets_table=TICKETS, ddb=ddb)
    assert waiting.waiting_for("FAN-80MM") == [ticket.ticket_id]
    # When the fan is delivered (twice: a second delivery finds nobody waiting)
    first = wake_waiting("FAN-80MM", waiting, now=NOW.replace(minute=5))
    second = wake_waiting("FAN-80MM", waiting, now=NOW.replace(minute=6))
    # Then the ticket is asked to be dispatched again, once, with its parts ready now
    assert first == [ticket.ticket_id] and second == []
    woken = DynamoTicketReader(tickets_table=TICKETS, ddb=ddb).get_ticket(ticket.ticket_id)
    assert woken.ticket.dispatch_state == "wanted"
    assert woken.ticket.parts_arrived_at == NOW.replace(minute=5)
    assert woken.ticket.version == ticket.version + 2
    assert woken.timeline[-1].kind == "dispatch_parts_arrived"


def test_a_ticket_no_longer_waiting_is_not_woken_and_its_wait_is_forgotten(ddb: Any) -> None:
    ticket = make_ticket("FAN-STALL", model="AC-HP")
    ddb.put_item(TableName=TICKETS, Item=to_item(ticket_item(ticket)))
    marks = DynamoDispatchMarks(tickets_table=TICKETS, ddb=ddb)
    marks.mark_dispatch(
        DispatchMark(
            ticket=ticket,
            state=DispatchState.AWAITING_PARTS,
            entry=entry("a"),
            waiting_skus=("FAN-80MM",),
        )
    )
    # Given the customer booked meanwhile
    current = DynamoTicketReader(tickets_table=TICKETS, ddb=ddb).get_ticket(ticket.ticket_id)
    marks.mark_dispatch(
        DispatchMark(ticket=current.ticket, state=DispatchState.BOOKED, entry=entry("b", 1))
    )
    waiting = DynamoWaitingTickets(tickets_table=TICKETS, ddb=ddb)
    assert wake_waiting("FAN-80MM", waiting, now=NOW) == []
    assert waiting.waiting_for("FAN-80MM") == []


def visit(booking_id: str, outcome: VisitOutcome, **changes: Any) -> VisitRecord:
    fields: dict[str, Any] = {
        "booking_id": booking_id,
        "ticket_id": f"T-{booking_id}",
        "engineer_id": "E-ann",
        "model": "AC-HP",
        "fault_code": "FAN-STALL",
        "status": BookingStatus.COMPLETED,
        "outcome": outcome,
        "updated_at": NOW,
    }
    return VisitRecord(**{**fields, **changes})


def test_an_engineers_first_time_fix_record_is_one_query_on_the_sparse_index(ddb: Any) -> None:
    # Given visits written by the job flow's transactions (the same VISIT# item builder)
    visits = [
        visit("B-1", VisitOutcome.VERIFIED),
        visit("B-2", VisitOutcome.UNVERIFIED),
        visit("B-3", VisitOutcome.CANNOT_COMPLETE),
        visit("B-4", VisitOutcome.COMPLETED),  # awaiting the device's verdict
        visit("B-5", VisitOutcome.VERIFIED, engineer_id="E-bob"),
        visit("B-6", VisitOutcome.VERIFIED, fault_code="PSU-OVERVOLT"),
    ]
    ddb.put_item(TableName=TICKETS, Item=to_item(ticket_item(make_ticket("FAN-STALL"))))
    transact(ddb, [visit_put(TICKETS, v) for v in visits], lambda c: AssertionError(c.reason))
    # and a later repeat of the code takes B-1's first-time fix away (its item is rewritten)
    transact(
        ddb, [visit_put(TICKETS, visit("B-1", VisitOutcome.REPEATED))], lambda c: AssertionError()
    )
    history = DynamoFixHistory(tickets_table=TICKETS, ddb=ddb)
    # When dispatch reads Ann's record on this model and code
    outcomes = history.visit_outcomes("E-ann", "AC-HP", "FAN-STALL")
    # Then only her visits on it are seen, and the record counts finished visits
    assert sorted(outcomes) == sorted(
        [
            VisitOutcome.REPEATED,
            VisitOutcome.UNVERIFIED,
            VisitOutcome.CANNOT_COMPLETE,
            VisitOutcome.COMPLETED,
        ]
    )
    assert FirstTimeFix.of(outcomes) == FirstTimeFix(visits=3, fixed=1)
    assert history.visit_outcomes("E-nobody", "AC-HP", "FAN-STALL") == []

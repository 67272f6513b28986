"""SLA escalation on the template's TicketsTable (serial moto server): the tracker written on
the ticket's own item, found through the sparse index, advanced once with the ticket's flags,
and gone from the index once the schedule is done or the ticket resolved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
from aftercare.adapters.aws import from_item
from aftercare.adapters.escalation import DynamoEscalations
from aftercare.adapters.ticket_items import ticket_key
from aftercare.domain.escalation import (
    first_tracker,
    load_escalation,
    plan_escalation,
    sweep_escalations,
)
from aftercare.domain.lifecycle import change_status
from aftercare.domain.ports import NewTicketPlan
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import Occurrence, TicketFlag, TicketStatus

from infra.local.provision import ProvisionResult
from tests.fakes.diagnostics import NOW, make_ticket
from tests.fakes.tables import ticket_store

REGION = "us-east-1"
POLICY = load_escalation()


class Pager:
    def __init__(self) -> None:
        self.pages: list[str] = []

    def page(self, message: str) -> None:
        self.pages.append(message)


def open_with_schedule(provisioned: ProvisionResult, ddb: Any, name: str) -> Ticket:
    """A ticket opened with its escalation schedule (response due in 4 h, resolution 24 h)."""
    ticket = make_ticket(name, thing=f"ac-{name.lower()}").model_copy(
        update={
            "sla_response_due": NOW + timedelta(hours=4),
            "sla_resolution_due": NOW + timedelta(hours=24),
        }
    )
    occurrence = Occurrence(
        fault_id=f"f-{name.lower()}",
        occurred_at=NOW,
        received_at=NOW,
        severity=ticket.severity,
        firmware="1",
    )
    ticket_store(provisioned.resources, ddb).open_ticket(
        NewTicketPlan(
            ticket=ticket,
            occurrence=occurrence,
            timeline=[],
            dedup_expires_at=0,
            escalation=first_tracker(ticket, POLICY),
        )
    )
    return ticket


def meta(provisioned: ProvisionResult, ddb: Any, ticket_id: str) -> dict[str, Any]:
    table = provisioned.resources["TicketsTable"]
    key = {k: {"S": v} for k, v in ticket_key(ticket_id).items()}
    return from_item(ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])


def test_a_ticket_nobody_takes_up_is_escalated_once(
    provisioned: ProvisionResult, moto_url: str
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    tickets = ticket_store(provisioned.resources, ddb)
    escalations = DynamoEscalations(tickets_table=provisioned.resources["TicketsTable"], ddb=ddb)
    # Given a ticket opened with its escalation schedule (response due in 4 h)
    ticket = open_with_schedule(provisioned, ddb, "ESC-TEST")
    pager = Pager()
    # When sweepers run before, at and (twice) after the response deadline
    assert sweep_escalations(escalations, pager, POLICY, NOW + timedelta(hours=1)) == []
    first = sweep_escalations(escalations, pager, POLICY, NOW + timedelta(hours=3, minutes=30))
    second = sweep_escalations(escalations, pager, POLICY, NOW + timedelta(hours=5))
    again = sweep_escalations(escalations, pager, POLICY, NOW + timedelta(hours=5))
    # Then each step acted once: page at 50 %, re-dispatch at 75 %, breached at 100 %
    assert [s.name for p in first for s in p.acted] == ["response@50%", "response@75%"]
    assert [s.name for p in second for s in p.acted] == ["response@100%"]
    assert again == [] and len(pager.pages) == 1
    detail = tickets.get_ticket(ticket.ticket_id)
    assert {TicketFlag.PARTNERS_ALLOWED, TicketFlag.SLA_BREACHED} <= set(detail.ticket.flags)
    assert [e.kind for e in detail.timeline].count("sla_escalated") == 3
    # and the ticket's own item holds the next step (the resolution's first, at 50 %)
    item = meta(provisioned, ddb, ticket.ticket_id)
    assert item["esc_index"] == 3
    assert item["esc_next_at"] == int((NOW + timedelta(hours=12)).timestamp())


def test_the_index_holds_only_what_the_sweeper_needs(
    provisioned: ProvisionResult, moto_url: str
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    ticket = open_with_schedule(provisioned, ddb, "ESC-KEYS")
    # When the sweeper's query finds the ticket in by_escalation
    escalations = DynamoEscalations(tickets_table=provisioned.resources["TicketsTable"], ddb=ddb)
    (tracker,) = [
        t for t in escalations.due(NOW + timedelta(hours=3), 200) if t.ticket_id == ticket.ticket_id
    ]
    # Then it is the first step, read from keys and esc_index alone (INCLUDE, not ALL)
    assert tracker.index == 0 and tracker.next_at == NOW + timedelta(hours=2)
    answer = ddb.query(
        TableName=provisioned.resources["TicketsTable"],
        IndexName="by_escalation",
        KeyConditionExpression="esc_bucket = :b",
        ExpressionAttributeValues={":b": {"S": tracker.bucket}},
    )
    (entry,) = [i for i in answer["Items"] if i["pk"]["S"] == f"TICKET#{ticket.ticket_id}"]
    assert set(entry) == {"pk", "sk", "esc_bucket", "esc_next_at", "esc_index"}


def test_a_resolved_ticket_leaves_the_index_and_a_racing_sweep_does_nothing(
    provisioned: ProvisionResult, moto_url: str
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    tickets = ticket_store(provisioned.resources, ddb)
    escalations = DynamoEscalations(tickets_table=provisioned.resources["TicketsTable"], ddb=ddb)
    ticket = open_with_schedule(provisioned, ddb, "ESC-RACE")
    # Given a sweeper that read the ticket while it was open, with its first step due
    later = NOW + timedelta(hours=3)
    (tracker,) = [t for t in escalations.due(later, 200) if t.ticket_id == ticket.ticket_id]
    plan = plan_escalation(tickets.get_ticket(ticket.ticket_id).ticket, tracker, POLICY, later)
    assert plan.acted
    # When the ticket is resolved before that sweeper writes
    change_status(
        tickets, ticket.ticket_id, TicketStatus.RESOLVED, actor="eng", reason="fixed", now=later
    )
    # Then its escalation attributes are gone with the resolution, so is its index entry,
    # and the racing sweeper's write is refused: nothing escalated, nothing paged
    assert not {"esc_index", "esc_bucket", "esc_next_at"} & set(
        meta(provisioned, ddb, ticket.ticket_id)
    )
    assert ticket.ticket_id not in {t.ticket_id for t in escalations.due(later, 200)}
    assert escalations.apply(plan, tracker) is False
    detail = tickets.get_ticket(ticket.ticket_id)
    assert "sla_escalated" not in [e.kind for e in detail.timeline]
    assert not {"esc_index", "esc_bucket", "esc_next_at"} & set(
        meta(provisioned, ddb, ticket.ticket_id)
    )


def test_a_tracker_item_from_before_the_upgrade_moves_onto_its_ticket(
    provisioned: ProvisionResult, moto_url: str
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    table = provisioned.resources["TicketsTable"]
    tickets = ticket_store(provisioned.resources, ddb)
    escalations = DynamoEscalations(tickets_table=table, ddb=ddb)
    # Given a ticket opened by the previous release: its tracker an item of its own
    ticket = make_ticket("ESC-OLD", thing="ac-esc-old").model_copy(
        update={
            "sla_response_due": NOW + timedelta(hours=4),
            "sla_resolution_due": NOW + timedelta(hours=24),
        }
    )
    occurrence = Occurrence(
        fault_id="f-esc-old",
        occurred_at=NOW,
        received_at=NOW,
        severity=ticket.severity,
        firmware="1",
    )
    tickets.open_ticket(
        NewTicketPlan(ticket=ticket, occurrence=occurrence, timeline=[], dedup_expires_at=0)
    )
    tracker = first_tracker(ticket, POLICY)
    assert tracker is not None
    legacy = {
        "pk": {"S": f"TICKET#{ticket.ticket_id}"},
        "sk": {"S": "ESC"},
        "ticket_id": {"S": ticket.ticket_id},
        "esc_index": {"N": "0"},
        "esc_bucket": {"S": tracker.bucket},
        "esc_next_at": {"N": str(tracker.next_epoch)},
        "esc_next_iso": {"S": tracker.next_at.isoformat()},
    }
    ddb.put_item(TableName=table, Item=legacy)
    # When the sweeper runs after its first two steps fell due, and again
    pager = Pager()
    first = sweep_escalations(escalations, pager, POLICY, NOW + timedelta(hours=3))
    again = sweep_escalations(escalations, pager, POLICY, NOW + timedelta(hours=3))
    # Then they acted once, the tracker lives on the ticket now, and its old item is gone
    assert [s.name for p in first for s in p.acted if p.ticket.ticket_id == ticket.ticket_id] == [
        "response@50%",
        "response@75%",
    ]
    assert ticket.ticket_id not in {p.ticket.ticket_id for p in again}
    key = {"pk": legacy["pk"], "sk": legacy["sk"]}
    assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    assert meta(provisioned, ddb, ticket.ticket_id)["esc_index"] == 2

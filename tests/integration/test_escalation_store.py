"""SLA escalation on the template's TicketsTable (serial moto server): the tracker written with
the ticket, found through the sparse index, advanced once with the ticket's flags."""

from __future__ import annotations

from datetime import timedelta

import boto3
from aftercare.adapters.escalation import DynamoEscalations
from aftercare.domain.escalation import first_tracker, load_escalation, sweep_escalations
from aftercare.domain.ports import NewTicketPlan
from aftercare.models.tickets import Occurrence, TicketFlag

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


def test_a_ticket_nobody_takes_up_is_escalated_once(
    provisioned: ProvisionResult, moto_url: str
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    tickets = ticket_store(provisioned.resources, ddb)
    escalations = DynamoEscalations(tickets_table=provisioned.resources["TicketsTable"], ddb=ddb)
    # Given a ticket opened with its escalation schedule (response due in 4 h)
    ticket = make_ticket("ESC-TEST", thing="ac-esc-0001").model_copy(
        update={
            "sla_response_due": NOW + timedelta(hours=4),
            "sla_resolution_due": NOW + timedelta(hours=24),
        }
    )
    tracker = first_tracker(ticket, POLICY)
    occurrence = Occurrence(
        fault_id="f-esc", occurred_at=NOW, received_at=NOW, severity=ticket.severity, firmware="1"
    )
    tickets.open_ticket(
        NewTicketPlan(
            ticket=ticket,
            occurrence=occurrence,
            timeline=[],
            dedup_expires_at=0,
            escalation=tracker,
        )
    )
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

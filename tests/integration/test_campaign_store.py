"""A fix campaign on the real adapters (moto DynamoDB and SQS): the child links walked a page at
a time across the shards with DynamoDB cursors, each page's counts stored conditionally, the
next page handed on through the queue, the incident resolved after the last page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.campaigns import DynamoCampaignStore, SqsCampaignQueue
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.incident_items import link_put, open_items, page_items
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.access import Caller
from aftercare.domain.incident_campaign import CampaignWorker, PageOutcome
from aftercare.domain.incident_desk import IncidentDesk, ResolveIncident
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    CampaignCursor,
    CampaignPage,
    Incident,
    IncidentPolicy,
    IncidentStatus,
    load_incident_policy,
)
from aftercare.domain.ports.campaigns import CampaignNotQueued
from aftercare.domain.ports.incidents import IncidentMoved
from aftercare.models.diagnostics import Purpose
from moto import mock_aws

from tests.fakes.aws import use_fake_credentials
from tests.fakes.diagnostics import FakePublisher
from tests.fakes.tables import create_template_tables
from tests.fakes.tickets import a_ticket

AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
INCIDENT_ID = "INC-202612070200-00c0de"
SHARDS = 3
CHILDREN = 40
ENGINEER = Caller(subject="s", username="ada", groups=frozenset({"engineers"}))


def small_pages() -> IncidentPolicy:
    """The shipped policy with 3 shards and 7-child pages (7/s for 1 s), so 40 children take 6
    pages and cross every shard boundary."""
    data = load_incident_policy().model_dump()
    data["detection"] |= {"shards": SHARDS}
    data["resolve"] |= {"campaign_per_second": 7, "page_seconds": 1}
    return IncidentPolicy.model_validate(data)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    use_fake_credentials(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        create_template_tables(ddb, ["IncidentsTable", "TicketsTable", "InventoryTable"])
        queue_url = sqs.create_queue(QueueName="campaign-test")["QueueUrl"]
        yield {"ddb": ddb, "sqs": sqs, "queue_url": queue_url}


def seed(aws: dict[str, Any], closed: int = 0) -> list[str]:
    """An open incident with CHILDREN child tickets (the first `closed` of them resolved)."""
    ddb = aws["ddb"]
    incident = Incident(
        incident_id=INCIDENT_ID,
        fault_code="IO-MODULE-FAIL",
        model="IC-300",
        opened_at=AT,
        updated_at=AT,
        threshold=20,
        window_minutes=10,
        devices_at_open=20,
        policy_version="test",
    )
    ddb.transact_write_items(TransactItems=open_items("aftercare-incidents-test", incident))
    ids = []
    for i in range(CHILDREN):
        ticket = a_ticket(
            AT,
            ticket_id=f"T-IC-{i:03d}",
            thing=f"ic-300-{i:04d}",
            model="IC-300",
            fault_code="IO-MODULE-FAIL",
            incident_id=INCIDENT_ID,
            status="resolved" if i < closed else "open",
        )
        ddb.put_item(TableName="aftercare-tickets-test", Item=to_item(ticket_item(ticket)))
        link = IncidentLink(
            incident_id=INCIDENT_ID,
            ticket_id=ticket.ticket_id,
            thing=ticket.thing,
            customer_id=ticket.customer_id,
            region=ticket.region,
            firmware=ticket.firmware,
            shard=i % SHARDS,
            linked_at=AT,
        )
        ddb.put_item(**link_put("aftercare-incidents-test", link)["Put"])
        ids.append(ticket.ticket_id)
    return ids


class World:
    def __init__(self, aws: dict[str, Any]) -> None:
        rules = small_pages()
        self.aws = aws
        self.store = DynamoCampaignStore(
            incidents_table="aftercare-incidents-test",
            tickets_table="aftercare-tickets-test",
            policy=rules,
            ddb=aws["ddb"],
        )
        tickets = DynamoTicketStore(
            tickets_table="aftercare-tickets-test",
            devices_table="unused",
            customers_table="unused",
            ddb=aws["ddb"],
        )
        self.queue = SqsCampaignQueue(queue_url=aws["queue_url"], sqs=aws["sqs"])
        self.publisher = FakePublisher()
        self.desk = IncidentDesk(
            incidents=self.store, tickets=tickets, queue=self.queue, policy=rules
        )
        self.worker = CampaignWorker(
            incidents=self.store,
            tickets=tickets,
            diagnostics=DynamoDiagnosticsStore(
                tickets_table="aftercare-tickets-test",
                inventory_table="aftercare-inventory-test",
                ddb=aws["ddb"],
            ),
            publisher=self.publisher,
            queue=self.queue,
            policy=rules,
            pause=lambda _: None,
            clock=lambda: AT + timedelta(minutes=1),
        )

    def receive(self) -> list[tuple[CampaignPage, int]]:
        response = self.aws["sqs"].receive_message(
            QueueUrl=self.aws["queue_url"],
            MaxNumberOfMessages=10,
            AttributeNames=["ApproximateReceiveCount"],
        )
        found = []
        for message in response.get("Messages", []):
            self.aws["sqs"].delete_message(
                QueueUrl=self.aws["queue_url"], ReceiptHandle=message["ReceiptHandle"]
            )
            count = int(message["Attributes"]["ApproximateReceiveCount"])
            found.append((CampaignPage.model_validate(json.loads(message["Body"])), count))
        return found

    def drain(self) -> list[PageOutcome]:
        outcomes = []
        while messages := self.receive():
            for page, count in messages:
                now = AT + timedelta(minutes=1)
                outcomes.append(self.worker.run_page(page, now, redelivered=count > 1))
        return outcomes


def test_a_campaign_walks_every_shard_in_pages_and_resolves_the_incident(aws):
    # Given an incident with 40 children over 3 shards, 2 of them resolved already
    ids = seed(aws, closed=2)
    world = World(aws)
    # When an engineer resolves it and the worker drains the campaign queue
    view = world.desk.resolve(ENGINEER, INCIDENT_ID, ResolveIncident(fix="reset_component"), AT)
    assert view.incident.status is IncidentStatus.MITIGATING
    outcomes = world.drain()
    # Then 40 children at 7 a page took 6 pages (the last one resolving the incident)
    assert outcomes == [PageOutcome.SENT] * 5 + [PageOutcome.FINISHED]
    # and each active child's device got one request, each child counted once
    things = [thing for thing, _ in world.publisher.published]
    assert len(things) == len(set(things)) == CHILDREN - 2
    incident = world.store.get_incident(INCIDENT_ID)
    assert incident is not None and incident.status is IncidentStatus.RESOLVED
    assert incident.campaign is not None
    campaign = incident.campaign
    assert (campaign.sent, campaign.already_closed, campaign.not_sent) == (38, 2, 0)
    assert (campaign.pages_done, campaign.cursor, campaign.finished_at) == (
        6,
        None,
        incident.resolved_at,
    )
    # and the requests are fleet fixes on the children's tickets; the pointer is gone
    stored = DynamoDiagnosticsStore(
        tickets_table="aftercare-tickets-test",
        inventory_table="aftercare-inventory-test",
        ddb=aws["ddb"],
    )
    assert {r.purpose for t in ids[2:] for r in stored.for_ticket(t)} == {Purpose.FLEET_FIX}
    assert world.store.active_incident("IC-300", "IO-MODULE-FAIL") is None


def test_the_page_walk_continues_inside_a_shard_and_across_shards(aws):
    seed(aws)
    store = World(aws).store
    seen: list[str] = []
    cursor: CampaignCursor | None = CampaignCursor()
    while cursor is not None:
        page = store.children_page(INCIDENT_ID, cursor, 7, SHARDS)
        assert len(page.links) <= 7
        seen += [link.ticket_id for link in page.links]
        cursor = page.next
    assert len(seen) == len(set(seen)) == CHILDREN


def test_a_page_recorded_already_is_refused_by_the_conditional_write(aws):
    seed(aws)
    world = World(aws)
    world.desk.resolve(ENGINEER, INCIDENT_ID, ResolveIncident(fix="reset_component"), AT)
    ((first, _),) = world.receive()
    assert world.worker.run_page(first, AT) is PageOutcome.SENT
    incident = world.store.get_incident(INCIDENT_ID)
    assert incident is not None and incident.campaign is not None
    # When a slower delivery of page 0 tries to record it again
    with pytest.raises(IncidentMoved):
        world.store.record_page(incident, pages_done_before=0)
    # Then the stored counts are the first delivery's
    again = world.store.get_incident(INCIDENT_ID)
    assert again is not None and again.campaign == incident.campaign


def test_the_page_write_is_the_incident_put_guarded_by_status_and_pages_recorded():
    incident = Incident(
        incident_id=INCIDENT_ID,
        fault_code="IO-MODULE-FAIL",
        model="IC-300",
        opened_at=AT,
        updated_at=AT,
        threshold=20,
        window_minutes=10,
        devices_at_open=20,
        policy_version="test",
        status=IncidentStatus.MITIGATING,
    )
    (put,) = page_items("t", incident, 4)
    condition = put["Put"]["ConditionExpression"]
    assert condition == "#status = :expected AND #campaign.#pages = :pages"
    assert put["Put"]["ExpressionAttributeValues"][":pages"] == {"N": "4"}
    resolved = incident.model_copy(update={"status": IncidentStatus.RESOLVED})
    _, pointer = page_items("t", resolved, 4)  # the last page also removes the pointer
    assert pointer["Update"]["UpdateExpression"] == "REMOVE #model"


def test_a_queue_that_refuses_the_page_is_campaign_not_queued(aws):
    queue = SqsCampaignQueue(queue_url=aws["queue_url"] + "-gone", sqs=aws["sqs"])
    page = CampaignPage(
        incident_id=INCIDENT_ID, campaign_id="fleet-x", page=0, cursor=CampaignCursor()
    )
    with pytest.raises(CampaignNotQueued):
        queue.enqueue(page)

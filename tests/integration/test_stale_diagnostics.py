"""No stale actions on the real adapters: the diagnostics transactions on the template's
TicketsTable (serial moto server), and the cancel reaching a device through the IoT data-plane
stand-in and a real Mosquitto."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore, IotDataPublisher
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.diagnostics import cancel_pending, start_diagnostic
from aftercare.domain.diagnostics_records import TicketNotActive
from aftercare.domain.lifecycle import change_status
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import DiagnosticState, Purpose
from aftercare.models.payloads import DiagnosticsCancel
from aftercare.models.tickets import TicketStatus

from infra.local.provision_context import ProvisionResult
from tests.fakes.diagnostics import NOW, FakePublisher, make_ticket
from tests.fakes.tables import ticket_store
from tests.integration.iot_data import device_on, iot_data_stand_in
from tests.integration.mosquitto_fixture import MosquittoBroker

REGION = "us-east-1"


class World:
    def __init__(self, provisioned: ProvisionResult, moto_url: str) -> None:
        self.ddb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
        table = provisioned.resources["TicketsTable"]
        self.table = table
        self.diagnostics = DynamoDiagnosticsStore(
            tickets_table=table,
            inventory_table=provisioned.resources["InventoryTable"],
            ddb=self.ddb,
        )
        self.tickets = ticket_store(provisioned.resources, self.ddb)

    def store(self, ticket: Ticket) -> Ticket:
        self.ddb.put_item(TableName=self.table, Item=to_item(ticket_item(ticket)))
        return ticket

    def request(self, ticket: Ticket, publisher: FakePublisher, **kwargs):
        return start_diagnostic(
            self.diagnostics,
            publisher,
            ticket,
            routine=kwargs.pop("routine", "self_test"),
            params=None,
            timeout=timedelta(minutes=5),
            actor=kwargs.pop("actor", "user:eng-ada"),
            purpose=kwargs.pop("purpose", Purpose.ENGINEER),
            now=NOW,
            **kwargs,
        )

    def close(self, ticket: Ticket, status: TicketStatus) -> Ticket:
        return change_status(
            self.tickets, ticket.ticket_id, status, actor="user:eng-bob", reason="done", now=NOW
        )

    def timeline(self, ticket: Ticket) -> list[str]:
        return [e.kind for e in self.tickets.get_ticket(ticket.ticket_id).timeline]


@pytest.fixture
def world(provisioned: ProvisionResult, moto_url: str) -> World:
    return World(provisioned, moto_url)


@pytest.mark.parametrize("status", [TicketStatus.RESOLVED, TicketStatus.CANCELLED])
def test_the_request_transaction_refuses_a_ticket_closed_after_it_was_read(world, status):
    # Given an auto-diagnose ticket as the stream delivered it (open), since resolved/cancelled
    opened = world.store(make_ticket(thing=f"stale-{status}-1"))
    world.close(opened, status)
    publisher = FakePublisher()
    # When AutoDiagnose records its request from the opened image
    with pytest.raises(TicketNotActive) as refused:
        world.request(opened, publisher, purpose=Purpose.AUTO, request_id=f"{opened.ticket_id}_a")
    # Then the transaction's ConditionCheck refused it: nothing stored, nothing sent
    assert refused.value.status is status
    assert world.diagnostics.for_ticket(opened.ticket_id) == []
    assert not publisher.published
    assert "diagnostics_requested" not in world.timeline(opened)


def test_a_redelivered_auto_trigger_for_a_closed_ticket_does_not_resend(world):
    # Given an auto-diagnostic recorded and sent while the ticket was open
    ticket = world.store(make_ticket(thing="stale-redeliver-1"))
    publisher = FakePublisher()
    request_id = f"{ticket.ticket_id}_auto0001"
    world.request(ticket, publisher, purpose=Purpose.AUTO, request_id=request_id)
    # When the ticket is resolved and the trigger is redelivered
    world.close(ticket, TicketStatus.RESOLVED)
    with pytest.raises(TicketNotActive):
        world.request(ticket, publisher, purpose=Purpose.AUTO, request_id=request_id)
    # Then the request was sent once only
    assert [r.request_id for _, r in publisher.published] == [request_id]


def test_resolving_a_ticket_cancels_its_pending_diagnostics(world):
    # Given a ticket with two pending requests
    ticket = world.store(make_ticket(thing="stale-resolve-1"))
    publisher = FakePublisher()
    pending = [world.request(ticket, publisher) for _ in range(2)]
    assert len(world.diagnostics.due(NOW + timedelta(hours=1), 10)) >= 2
    # When it is resolved, and its stream record is handled
    resolved = world.close(ticket, TicketStatus.RESOLVED)
    cancelled = cancel_pending(world.diagnostics, publisher, resolved, NOW + timedelta(seconds=2))
    # Then both are stored cancelled (off the sweeper's index), with the timeline saying so
    assert {r.request_id for r in cancelled} == {p.request_id for p in pending}
    stored = world.diagnostics.for_ticket(ticket.ticket_id)
    assert {r.status for r in stored} == {DiagnosticState.CANCELLED}
    assert all(r.detail == "ticket resolved" for r in stored)
    due = world.diagnostics.due(NOW + timedelta(hours=1), 100)
    assert not [d for d in due if d[0] == ticket.ticket_id]
    assert world.timeline(ticket).count("diagnostics_cancelled") == 2
    # And handling the stream record again changes nothing and tells the device nothing more
    assert cancel_pending(world.diagnostics, publisher, resolved, NOW) == []
    assert len(publisher.cancels) == 2


def test_the_cancel_reaches_the_device_on_its_command_topic(mosquitto: MosquittoBroker):
    # Given the data-plane stand-in in front of a broker, and a device on its cancel topic
    topic = "cmd/aftercare/rt-x-0001/diagnostics/cancel"
    with iot_data_stand_in(mosquitto.url) as url, device_on(mosquitto.port, topic) as device:
        # When a function cancels a request
        cancel = DiagnosticsCancel(
            request_id="T-ABC_0123456789",
            reason="ticket resolved",
            cancelled_at=NOW,
            expires_at=NOW + timedelta(minutes=5),
        )
        IotDataPublisher(endpoint=url).publish_cancel("rt-x-0001", cancel)
        # Then the device gets it at QoS 1 as the shared contract says
        assert device.received.wait(10)
        assert device.got[0].qos == 1
        assert DiagnosticsCancel.model_validate_json(device.got[0].payload) == cancel

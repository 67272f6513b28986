"""The KPIs count how tickets were really resolved: the self-service flow's and a remote fix's
own writes (DynamoDiagnosticsStore on moto, TicketsTable from template.yaml) read back as the
stream images they make, through the aggregator's decoding and the KPI contributions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.adapters.kpi_store import stream_updates
from aftercare.adapters.ticket_items import ticket_item, ticket_key
from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.guides import load_guides
from aftercare.domain.kpis import contributions, figures, load_kpi_definitions, merge
from aftercare.domain.self_service import start_self_service
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import Outcome, Purpose
from aftercare.models.tickets import Channel
from moto import mock_aws

from tests.fakes.diagnostics import NOW, FakePublisher, make_ticket
from tests.fakes.tables import create_template_tables
from tests.unit.test_diagnostics import answer, deliver

DEFS = load_kpi_definitions()
TICKETS = "aftercare-tickets-test"
TIMEOUT = timedelta(minutes=5)
DAY = NOW.date().isoformat()


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(client, ("TicketsTable", "InventoryTable"))
        yield client


@pytest.fixture
def store(ddb: Any) -> DynamoDiagnosticsStore:
    return DynamoDiagnosticsStore(
        tickets_table=TICKETS, inventory_table="aftercare-inventory-test", ddb=ddb
    )


def open_ticket(ddb: Any, ticket: Ticket) -> dict[str, Any]:
    """The ticket written as intake writes it; its item is the stream's first NewImage."""
    item = to_item(ticket_item(ticket))
    ddb.put_item(TableName=TICKETS, Item=item)
    return item


def stream_record(event_id: str, ticket: Ticket, old: Any, new: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"Keys": to_item(ticket_key(ticket.ticket_id)), "NewImage": new}
    if old is not None:
        data["OldImage"] = old
    return {"eventID": event_id, "eventName": "MODIFY" if old else "INSERT", "dynamodb": data}


def counted(ddb: Any, ticket: Ticket, opened: dict[str, Any]) -> dict[Any, int]:
    """The KPI contributions of the ticket's opening and its item as it is now."""
    now_item = ddb.get_item(TableName=TICKETS, Key=to_item(ticket_key(ticket.ticket_id)))["Item"]
    updates = [
        *stream_updates(stream_record("e1", ticket, None, opened), DEFS),
        *stream_updates(stream_record("e2", ticket, opened, now_item), DEFS),
    ]
    facts = None
    for update in updates:
        facts = merge(facts, update.facts)
    return dict(contributions(facts, DEFS))


def kpis_of(counts: dict[Any, int], group: str) -> dict[str, Any]:
    summed: dict[str, int] = {}
    for (dim, _period, name), value in counts.items():
        if dim == group:
            summed[name] = summed.get(name, 0) + value
    return figures(summed, DEFS, None)


def test_a_device_confirmed_self_service_fix_counts_in_the_self_service_ratio(ddb, store):
    # Given a fan stall a customer raised in the app (as the raised-tickets feature writes it)
    ticket = make_ticket(
        "FAN-STALL", thing="ac-hp-0004", model="AC-HP", routine="self_test", channel=Channel.APP
    )
    opened = open_ticket(ddb, ticket)
    # When they follow the guide and the device's self-test no longer sees the fault
    publisher = FakePublisher()
    record = start_self_service(
        store.load_ticket(ticket.ticket_id),
        store.for_ticket(ticket.ticket_id),
        guides=load_guides(),
        store=store,
        publisher=publisher,
        actor="user:cust-0001",
        now=NOW,
        timeout=TIMEOUT,
    )
    later = NOW + timedelta(minutes=1)
    found = {"active_faults": [], "checks": {}}
    outcome = deliver(
        store, publisher, ticket.thing, answer(record.request_id, findings=found), later
    )
    assert outcome.outcome is Outcome.SELF_SERVICE_FIXED
    # Then the stream images of those writes count one resolution, and it is self-service
    counts = counted(ddb, ticket, opened)
    assert counts[("channel#app", f"DAY#{DAY}", "resolved_self_service")] == 1
    kpis = kpis_of(counts, "all#all")
    assert kpis["self_service_ratio"] == 1.0 and kpis["remote_fix_ratio"] == 0.0
    # And the ticket is counted under the channel it was raised through, not `device`
    assert kpis_of(counts, "channel#app")["resolved"] == 1
    assert not any(dim == "channel#device" for dim, _, _ in counts)


def test_a_verified_remote_fix_counts_in_the_remote_fix_ratio(ddb, store):
    # Given a Wi-Fi drop the device reported, and an engineer's remedy
    ticket = make_ticket()
    opened = open_ticket(ddb, ticket)
    publisher = FakePublisher()
    remedy = start_diagnostic(
        store,
        publisher,
        store.load_ticket(ticket.ticket_id),
        routine="reset_component",
        params=None,
        timeout=TIMEOUT,
        actor="user:eng-ada",
        purpose=Purpose.ENGINEER,
        now=NOW,
    )
    # When the device clears the fault and its verification self-test confirms it
    later = NOW + timedelta(seconds=1)
    cleared = {"component": "wifi", "cleared": ["WIFI-DROP"], "remaining": []}
    fixed = answer(remedy.request_id, remedied=True, findings=cleared)
    follow_up = deliver(store, publisher, ticket.thing, fixed, later).follow_up
    assert follow_up
    clean = answer(follow_up, findings={"active_faults": [], "checks": {}})
    verified = deliver(store, publisher, ticket.thing, clean, later + timedelta(seconds=1))
    assert verified.outcome is Outcome.REMOTE_FIX
    # Then it is one remote resolution, on the device channel, and no self-service one
    counts = counted(ddb, ticket, opened)
    assert counts[("channel#device", f"DAY#{DAY}", "resolved_remote")] == 1
    kpis = kpis_of(counts, "all#all")
    assert kpis["remote_fix_ratio"] == 1.0 and kpis["self_service_ratio"] == 0.0

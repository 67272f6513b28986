"""A device's and a customer's tickets through the KEYS_ONLY `by_thing` and `by_customer`
indexes (moto, tables from template.yaml): a Query of keys, then one BatchGetItem of the
tickets listed, the filters applied to the tickets read; the request budget of a page."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.ticket_items import ticket_item
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.domain.paging import TicketFilters, TicketQuery, stored_time
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import Priority, TicketStatus
from moto import mock_aws

from tests.fakes.aws import use_fake_credentials
from tests.fakes.diagnostics import make_ticket
from tests.fakes.tables import create_template_tables

START = datetime(2026, 11, 1, 8, tzinfo=UTC)
TABLE = "aftercare-tickets-test"
THING = "rt-k-0001"


def ticket(n: int, **fields: Any) -> Ticket:
    at = START + timedelta(minutes=n)
    base = make_ticket(thing=fields.pop("thing", THING), status=fields.pop("status", "open"))
    return base.model_copy(
        update={
            "ticket_id": f"K-{n:05d}",
            "opened_at": at,
            "updated_at": at,
            "customer_id": "c-0009",
            **fields,
        }
    )


TICKETS = [
    ticket(1, priority=Priority("P1"), status=TicketStatus.RESOLVED),
    ticket(2, priority=Priority("P3")),
    ticket(3, priority=Priority("P3")),
    ticket(4, priority=Priority("P3"), updated_at=START + timedelta(hours=5)),
    ticket(5, priority=Priority("P2"), thing="rt-k-0002"),
]


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        use_fake_credentials(patch)
        with mock_aws():
            client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
            create_template_tables(client, ("TicketsTable",))
            for t in TICKETS:
                client.put_item(TableName=TABLE, Item=to_item(ticket_item(t)))
            yield client


@pytest.fixture
def counted(ddb: Any) -> Iterator[tuple[DynamoTicketReader, Counter[str]]]:
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    ddb.meta.events.register("before-call.dynamodb", count)
    try:
        yield DynamoTicketReader(tickets_table=TABLE, ddb=ddb), calls
    finally:
        ddb.meta.events.unregister("before-call.dynamodb", count)


def ids(page: Any) -> list[str]:
    return [t.ticket_id for t in page.tickets]


def test_the_device_and_customer_indexes_hold_keys_only(ddb):
    # When the by_thing and by_customer indexes are queried directly
    for index, attribute, value in (
        ("by_thing", "thing", THING),
        ("by_customer", "customer_id", "c-0009"),
    ):
        items = ddb.query(
            TableName=TABLE,
            IndexName=index,
            KeyConditionExpression="#a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
        )["Items"]
        # Then each entry is the table's and the index's keys, nothing the listing shows
        assert items and all(set(i) == {"pk", "sk", attribute, "opened_key"} for i in items)


def test_a_devices_page_is_one_query_of_keys_and_one_batch_get(counted):
    reader, calls = counted
    # When a device's open tickets are paged, two at a time
    page = reader.page_tickets(TicketQuery(things=(THING,), status="open", limit=2))
    # Then they are the newest two open ones, whole tickets read by key
    assert ids(page) == ["K-00004", "K-00003"]
    assert page.tickets[0].priority == Priority("P3") and page.next_after is not None
    assert calls == Counter({"Query": 1, "BatchGetItem": 1})


def test_a_customers_narrowed_page_filters_the_tickets_read_and_reads_on_while_short(counted):
    reader, calls = counted
    # Given the customer's only P1 ticket is their oldest
    # When their P1 tickets are asked for, one at a time
    page = reader.page_tickets(
        TicketQuery(customer_id="c-0009", filters=TicketFilters(priority="P1"), limit=1)
    )
    # Then the reader followed the index past the newer ones until it found it
    assert ids(page) == ["K-00001"] and page.next_after is None
    assert calls["Query"] == 3 and calls["BatchGetItem"] == 3  # keys 2 at a time: 5, 4 | 3, 2 | 1
    # and the devices filter and updated_since apply to the tickets read too
    since = stored_time(START + timedelta(hours=1))
    narrowed = TicketQuery(
        customer_id="c-0009",
        things=(THING,),
        filters=TicketFilters(updated_since=since),
        limit=5,
    )
    assert ids(reader.page_tickets(narrowed)) == ["K-00004"]
    assert ids(
        reader.page_tickets(TicketQuery(customer_id="c-0009", things=("rt-k-0002",), limit=5))
    ) == ["K-00005"]


def test_a_devices_whole_listing_reads_its_tickets_by_key(counted):
    reader, calls = counted
    listed = reader.list_tickets(thing=THING)
    assert [t.ticket_id for t in listed] == ["K-00004", "K-00003", "K-00002", "K-00001"]
    assert [t.ticket_id for t in reader.list_tickets(thing=THING, status="resolved")] == ["K-00001"]
    assert calls == Counter({"Query": 2, "BatchGetItem": 2})

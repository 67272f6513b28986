"""Paged ticket listings on moto (`mock_aws`), tables built from template.yaml's properties.

Several hundred tickets over every status and three devices; every listing is walked page by
page with the cursor and must equal the full listing, in order, each ticket once, while the
first page reads only what one page needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.diagnostics import DynamoDeviceDirectory
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.ticket_items import ticket_item
from aftercare.domain.access import Caller
from aftercare.domain.paging import TicketPage, TicketQuery, decode_cursor, encode_cursor
from aftercare.domain.support import Support
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketStatus
from moto import mock_aws

from infra.cli_api import Listing, collect, direct_page
from infra.cli_core import LIST_FIELDS, CliError
from tests.fakes.aws import use_fake_credentials
from tests.fakes.diagnostics import FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.tables import create_template_tables

TABLES = ("TicketsTable", "DevicesTable")
START = datetime(2026, 11, 1, tzinfo=UTC)
OWNERS = {"ac-hp-0001": "c-0001", "ac-hp-0002": "c-0001", "rt-x-0003": "c-0003"}
STATUSES = list(TicketStatus)
COUNT = 260


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as patch:
        use_fake_credentials(patch)
        with mock_aws():
            ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
            create_template_tables(ddb, TABLES)
            for thing, owner in OWNERS.items():
                item = {"thing": thing, "customer_id": owner, "model": "AC-HP"}
                ddb.put_item(TableName="aftercare-devices-test", Item=to_item(item))
            tickets = [ticket(n) for n in range(COUNT)]
            for t in tickets:
                ddb.put_item(TableName="aftercare-tickets-test", Item=to_item(ticket_item(t)))
            store = DynamoTicketStore(
                tickets_table="aftercare-tickets-test",
                devices_table="aftercare-devices-test",
                customers_table="aftercare-customers-test",
                ddb=ddb,
            )
            yield {"ddb": ddb, "store": store, "tickets": tickets}


def ticket(n: int) -> Ticket:
    thing = list(OWNERS)[n % len(OWNERS)]
    # some tickets share an opened_at: the ticket id breaks the tie, as in the index key
    at = START + timedelta(minutes=n // 2, microseconds=0 if n % 5 else 1234)
    return make_ticket(thing=thing, status=STATUSES[n % len(STATUSES)]).model_copy(
        update={
            "ticket_id": f"T-{n:05d}",
            "customer_id": OWNERS[thing],
            "opened_at": at,
            "updated_at": at,
        }
    )


def newest_first(tickets: list[Ticket]) -> list[str]:
    keyed = {t.ticket_id: ticket_item(t)["opened_key"] for t in tickets}
    return sorted(keyed, key=lambda tid: keyed[tid], reverse=True)


def walk(page_of: Any, limit: int) -> tuple[list[str], int]:
    """Every page of a listing, following the cursor the way the API does."""
    seen: list[str] = []
    after, pages = None, 0
    while True:
        page: TicketPage = page_of(after, limit)
        pages += 1
        seen += [t.ticket_id for t in page.tickets]
        if page.next_after is None:
            return seen, pages
        cursor = encode_cursor(page.next_after, status=None, thing=None)
        after = decode_cursor(cursor, status=None, thing=None)


@pytest.mark.parametrize("limit", [23, 200])
def test_staff_walk_every_status_page_by_page(world, limit):
    store = world["store"]
    seen, pages = walk(
        lambda after, n: store.page_tickets(TicketQuery(after=after, limit=n)), limit
    )
    assert seen == newest_first(world["tickets"])
    assert pages == -(-COUNT // limit)  # a full last page needs no extra round trip


def test_one_status_and_one_device_with_a_status(world):
    store = world["store"]
    open_only, _ = walk(
        lambda after, n: store.page_tickets(TicketQuery(status="open", after=after, limit=n)), 11
    )
    assert open_only == newest_first([t for t in world["tickets"] if t.status == "open"])
    device_open, _ = walk(
        lambda after, n: store.page_tickets(
            TicketQuery(status="open", things=("rt-x-0003",), after=after, limit=n)
        ),
        3,
    )
    expected = [t for t in world["tickets"] if t.status == "open" and t.thing == "rt-x-0003"]
    assert device_open == newest_first(expected) and device_open


def test_a_customer_pages_across_their_own_devices_only(world):
    support = Support(
        tickets=world["store"],
        devices=DynamoDeviceDirectory(devices_table="aftercare-devices-test", ddb=world["ddb"]),
        diagnostics=FakeDiagnosticsStore(),
        publisher=FakePublisher(),
        default_timeout=timedelta(minutes=5),
    )
    customer = Caller(
        subject="s", username="cust-0001", groups=frozenset({"customers"}), customer_id="c-0001"
    )
    seen, _ = walk(
        lambda after, n: support.list_tickets(
            customer, status=None, thing=None, limit=n, after=after
        ),
        25,
    )
    assert seen == newest_first([t for t in world["tickets"] if t.customer_id == "c-0001"])


def test_the_first_page_reads_only_what_a_page_needs(world):
    # Given a counter of the items each Query returns
    read: list[int] = []
    hook = lambda parsed, **_: read.append(parsed.get("Count", 0))  # noqa: E731
    world["ddb"].meta.events.register("after-call.dynamodb.Query", hook)
    try:
        page = world["store"].page_tickets(TicketQuery(limit=10))
    finally:
        world["ddb"].meta.events.unregister("after-call.dynamodb.Query", hook)
    # Then one Query per status, each for at most one page (plus one to know there is more)
    assert len(page.tickets) == 10 and page.next_after is not None
    assert len(read) == len(STATUSES) and sum(read) <= len(STATUSES) * 11 < COUNT


def test_the_cli_direct_mode_pages_with_the_apis_cursor(world):
    # Given the CLI's direct (DynamoDB) listing of open tickets, 9 a page
    listing = Listing(status="open", thing=None, limit=9, cursor=None, follow=False)
    first, cursor = direct_page(world["store"], listing, None)
    # When it follows the cursor to the end (as --all does)
    rest, last = collect(
        lambda c: direct_page(world["store"], listing, c),
        Listing(status="open", thing=None, limit=9, cursor=cursor, follow=True),
    )
    # Then the rows are the contract's keys, each open ticket once, newest first
    ids = [r["ticket_id"] for r in first + rest]
    assert ids == newest_first([t for t in world["tickets"] if t.status == "open"])
    assert set(first[0]) == set(LIST_FIELDS["tickets"]) and last is None
    # And a cursor used with other filters is refused with the reason
    with pytest.raises(CliError, match="invalid_cursor"):
        direct_page(world["store"], Listing("closed", None, 9, None, False), cursor)

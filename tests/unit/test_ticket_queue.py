"""The console's ticket queue: `GET /tickets` narrowed by priority, region, SLA due and
updated-since, paged with a cursor bound to those filters (T21 on moto, tables from
template.yaml; the API handler wired to the real DynamoDB store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import boto3
import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.ticket_items import ticket_item
from aftercare.adapters.ticket_reads import newest_first_query
from aftercare.domain.paging import (
    InvalidCursor,
    TicketFilters,
    TicketQuery,
    decode_cursor,
    encode_cursor,
    stored_time,
)
from aftercare.domain.support import Support
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import Priority, TicketStatus
from moto import mock_aws

from tests.fakes.aws import use_fake_credentials
from tests.fakes.diagnostics import FakeDiagnosticsStore, FakePublisher, make_ticket
from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.fakes.tables import create_template_tables

API = load_handler("api", "api_handler")
START = datetime(2026, 11, 1, 8, tzinfo=UTC)
TABLE = "aftercare-tickets-test"
SHANGHAI = ZoneInfo("Asia/Shanghai")
ENGINEER = {"sub": "1", "token_use": "id", "cognito:username": "eng-ada",
            "cognito:groups": ["engineers"]}  # fmt: skip
CUSTOMER = {"sub": "3", "token_use": "id", "cognito:username": "cust-0001",
            "cognito:groups": ["customers"], "custom:customer_id": "c-0001"}  # fmt: skip


def ticket(n: int, **fields: Any) -> Ticket:
    """Ticket n: opened n minutes after START, changed at `updated_at` (default: opening)."""
    at = START + timedelta(minutes=n)
    if "priority" in fields:
        fields["priority"] = Priority(fields["priority"])
    base = make_ticket(thing=f"rt-x-{n:04d}", status=fields.pop("status", TicketStatus.OPEN))
    return base.model_copy(
        update={
            "ticket_id": f"T-{n:05d}",
            "opened_at": at,
            "updated_at": at,
            "sla_resolution_due": at + timedelta(hours=24),
            **fields,
        }
    )


TICKETS = [
    ticket(1, priority="P1", region="eu-west"),
    ticket(2, priority="P1", region="us-east", customer_id="c-0002"),
    ticket(3, priority="P3", region="eu-west", updated_at=START + timedelta(hours=5)),
    ticket(4, priority="P1", region="eu-west", status=TicketStatus.DIAGNOSING),
    ticket(5, priority="P2", region="eu-west", sla_resolution_due=START + timedelta(hours=2)),
    ticket(6, priority="P1", region="eu-west", customer_id="c-0002"),
]


@pytest.fixture(scope="module")
def store() -> Iterator[DynamoTicketStore]:
    with pytest.MonkeyPatch.context() as patch:
        use_fake_credentials(patch)
        with mock_aws():
            ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
            create_template_tables(ddb, ("TicketsTable", "DevicesTable"))
            for t in TICKETS:
                ddb.put_item(TableName=TABLE, Item=to_item(ticket_item(t)))
            yield DynamoTicketStore(
                tickets_table=TABLE,
                devices_table="aftercare-devices-test",
                customers_table="aftercare-customers-test",
                ddb=ddb,
            )


def ids(store: DynamoTicketStore, **query: Any) -> list[str]:
    return [t.ticket_id for t in store.page_tickets(TicketQuery(limit=50, **query)).tickets]


# --------------------------------------------------------------------------- the store


def test_priority_and_region_narrow_every_status(store):
    # Given P1 tickets in two regions and two statuses
    # When staff ask for P1 in eu-west, any status
    found = ids(store, filters=TicketFilters(priority="P1", region="eu-west"))
    # Then exactly those, newest first, across the status partitions
    assert found == ["T-00006", "T-00004", "T-00001"]


def test_sla_due_before_keeps_the_tickets_due_first(store):
    due = stored_time(START + timedelta(hours=3))
    assert ids(store, filters=TicketFilters(sla_due_before=due)) == ["T-00005"]


def test_updated_since_returns_only_what_changed_since_the_last_poll(store):
    # Given one ticket changed hours after the others were opened
    # When the queue polls with the time of its last poll
    since = stored_time(START + timedelta(hours=1))
    # Then only that ticket comes back, also within a status
    assert ids(store, filters=TicketFilters(updated_since=since)) == ["T-00003"]
    assert ids(store, status="open", filters=TicketFilters(updated_since=since)) == ["T-00003"]
    assert ids(store, status="diagnosing", filters=TicketFilters(updated_since=since)) == []


def test_a_customer_narrowing_sees_only_their_own(store):
    found = ids(store, customer_id="c-0001", filters=TicketFilters(priority="P1"))
    assert found == ["T-00004", "T-00001"]


def test_pages_of_a_narrowed_listing_follow_the_cursor(store):
    # Given four P1 tickets, read two at a time
    filters = TicketFilters(priority="P1")
    first = store.page_tickets(TicketQuery(filters=filters, limit=2))
    assert first.next_after is not None
    cursor = encode_cursor(first.next_after, status=None, thing=None, filters=filters)
    after = decode_cursor(cursor, status=None, thing=None, filters=filters)
    second = store.page_tickets(TicketQuery(filters=filters, after=after, limit=2))
    # Then the two pages are the four, each once, newest first
    pages = [t.ticket_id for t in [*first.tickets, *second.tickets]]
    assert pages == ["T-00006", "T-00004", "T-00002", "T-00001"]
    assert second.next_after is None


def test_a_cursor_is_bound_to_its_narrowing_filters():
    key = "2026-11-01T08:01:00Z#T-00001"
    cursor = encode_cursor(key, status=None, thing=None, filters=TicketFilters(priority="P1"))
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, status=None, thing=None, filters=TicketFilters(priority="P2"))
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, status=None, thing=None)
    unfiltered = encode_cursor(key, status=None, thing=None)
    assert decode_cursor(unfiltered, status=None, thing=None, filters=TicketFilters()) == key


def test_the_narrowing_is_a_filter_on_the_index_query_not_a_scan():
    request = newest_first_query(
        TABLE,
        "by_status",
        "status",
        "open",
        before=None,
        limit=3,
        narrowing=TicketFilters(region="eu-west", updated_since="2026-11-01T09:00:00Z"),
    )
    assert request["IndexName"] == "by_status"
    assert request["FilterExpression"] == "#n0 = :n0 AND #n1 >= :n1"
    assert request["ExpressionAttributeNames"] == {
        "#a": "status",
        "#n0": "region",
        "#n1": "updated_at",
    }


def test_stored_time_renders_any_offset_as_the_items_do():
    at = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)
    east = at.astimezone(SHANGHAI)
    assert stored_time(east) == stored_time(at) == "2026-11-01T10:30:00Z"


# --------------------------------------------------------------------------- the route


@pytest.fixture
def api(store: DynamoTicketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    diagnostics = FakeDiagnosticsStore()
    support = Support(
        tickets=store,
        devices=diagnostics,  # unused by the listing
        diagnostics=diagnostics,
        publisher=FakePublisher(),
        default_timeout=timedelta(minutes=5),
    )
    monkeypatch.setattr(API, "deps", lambda: support)


def call(path: str, claims: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    response = API.app.resolve(http_api_event("GET", path, claims), None)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], json.loads(response["body"]), headers


def test_the_queue_route_narrows_and_pages(api):
    # When an engineer asks for P1 tickets in eu-west, one at a time
    status, rows, headers = call("/tickets?priority=P1&region=eu-west&limit=1", ENGINEER)
    assert status == 200 and [r["ticket_id"] for r in rows] == ["T-00006"]
    # Then the cursor leads on with the same filters, and is refused with others
    cursor = quote(headers["x-next-cursor"])
    status, rows, _ = call(f"/tickets?priority=P1&region=eu-west&limit=1&cursor={cursor}", ENGINEER)
    assert status == 200 and [r["ticket_id"] for r in rows] == ["T-00004"]
    status, body, _ = call(f"/tickets?priority=P1&limit=1&cursor={cursor}", ENGINEER)
    assert status == 400 and body["reason"] == "invalid_cursor"


def test_the_queue_route_polls_for_updates_in_any_offset(api):
    # Given the console's clock in UTC+8
    since = quote((START + timedelta(hours=1)).astimezone(SHANGHAI).isoformat())
    status, rows, _ = call(f"/tickets?updated_since={since}", ENGINEER)
    assert status == 200 and [r["ticket_id"] for r in rows] == ["T-00003"]


def test_a_customer_queue_holds_only_their_tickets(api):
    status, rows, _ = call("/tickets?priority=P1", CUSTOMER)
    assert status == 200 and [r["ticket_id"] for r in rows] == ["T-00004", "T-00001"]


@pytest.mark.parametrize(
    "query",
    [
        "priority=P9",
        "region=Europe",
        "sla_due_before=2026-11-01T10:00:00",  # no offset: which 10:00?
        "updated_since=yesterday",
    ],
)
def test_bad_queue_filters_are_refused_with_a_reason(api, query):
    status, body, _ = call(f"/tickets?{query}", ENGINEER)
    assert status == 422 and body["reason"]

"""Paged listings: the cursor codec, the merge across partitions, the query request shape."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from aftercare.adapters.ticket_reads import newest_first_query
from aftercare.domain.paging import (
    InvalidCursor,
    TicketQuery,
    decode_cursor,
    encode_cursor,
    newest_page,
)
from aftercare.domain.tickets import opened_key
from pydantic import ValidationError

from infra.cli import invoke
from infra.cli_api import Listing, collect
from infra.cli_core import CliError
from tests.fakes.diagnostics import make_ticket

KEY = "2026-12-05T23:55:03.123456Z#T-0001"


def test_a_cursor_round_trips_and_is_url_safe():
    cursor = encode_cursor(KEY, status="open", thing=None)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, status="open", thing=None) == KEY


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "AAAA",  # base64 of bytes that are not JSON
        forged([KEY]),
        forged({"v": 1, "after": KEY, "status": None}),  # a key missing
        forged({"v": 1, "after": KEY, "status": None, "thing": None, "admin": True}),
        forged({"v": 1, "after": "' OR 1=1", "status": None, "thing": None}),
        forged({"v": 1, "after": KEY + "#x", "status": None, "thing": None}),
        forged({"v": "1", "after": KEY, "status": None, "thing": None}),
        forged({"v": 2, "after": KEY, "status": None, "thing": None}),
        "A" * 600,
    ],
)
def test_a_tampered_or_made_up_cursor_is_invalid(cursor):
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, status=None, thing=None)


def test_a_cursor_from_a_listing_with_other_filters_is_invalid():
    cursor = encode_cursor(KEY, status="open", thing=None)
    with pytest.raises(InvalidCursor, match="other filters"):
        decode_cursor(cursor, status="closed", thing=None)
    with pytest.raises(InvalidCursor, match="other filters"):
        decode_cursor(cursor, status="open", thing="ac-hp-0004")


def test_page_size_is_bounded():
    for limit in (0, 201):
        with pytest.raises(ValidationError):
            TicketQuery(limit=limit)
    assert TicketQuery(limit=200).limit == 200


def keyed(n: int, status: str) -> tuple[str, object]:
    at = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=n)
    ticket = make_ticket(status=status).model_copy(update={"ticket_id": f"T-{n:04d}"})
    return opened_key(at.isoformat().replace("+00:00", "Z"), ticket.ticket_id), ticket


def test_partitions_merge_newest_first_and_the_cursor_is_the_last_key():
    # Given the newest (limit + 1) of two status partitions
    opened = [keyed(n, "open") for n in (9, 7, 5)]
    closed = [keyed(n, "closed") for n in (8, 6, 4)]
    # When a page of 3 is cut from them
    page = newest_page(opened + closed, 3)  # type: ignore[arg-type]
    # Then it is the 3 newest across both, and the next page starts below the third
    assert [t.ticket_id for t in page.tickets] == ["T-0009", "T-0008", "T-0007"]
    assert page.next_after == opened[1][0]


def test_the_last_page_has_no_cursor():
    page = newest_page([keyed(1, "open"), keyed(2, "open")], 3)  # type: ignore[list-item]
    assert len(page.tickets) == 2 and page.next_after is None


def test_the_first_page_queries_one_partition_newest_first_with_a_limit():
    request = newest_first_query("t", "by_status", "status", "open", before=None, limit=51)
    assert request["KeyConditionExpression"] == "#a = :v"
    assert request["ScanIndexForward"] is False and request["Limit"] == 51
    assert "FilterExpression" not in request and "ExclusiveStartKey" not in request


def test_a_later_page_starts_strictly_below_the_cursor_key():
    request = newest_first_query(
        "t", "by_thing", "thing", "ac-hp-0004", before=KEY, limit=11, status="open"
    )
    assert request["KeyConditionExpression"] == "#a = :v AND opened_key < :before"
    assert request["ExpressionAttributeValues"][":before"] == {"S": KEY}
    assert request["FilterExpression"] == "#s = :s"
    assert request["ExpressionAttributeNames"] == {"#a": "thing", "#s": "status"}


def test_a_customers_listing_is_one_by_customer_partition_filtered_by_device():
    # A customer's tickets are those opened for them (whoever owns the device now)
    request = newest_first_query(
        "t", "by_customer", "customer_id", "c-0001", before=None, limit=6, things=("rt-x-0001",)
    )
    assert request["IndexName"] == "by_customer"
    assert request["ExpressionAttributeValues"][":v"] == {"S": "c-0001"}
    assert request["FilterExpression"] == "#t IN (:t0)"
    assert request["ExpressionAttributeValues"][":t0"] == {"S": "rt-x-0001"}


# --------------------------------------------------------------------------- CLI


def pages_of(rows: list[int], size: int):
    """A page function over `rows`, its cursor being the next index (as text)."""
    calls: list[str | None] = []

    def page(cursor: str | None) -> tuple[list[dict[str, int]], str | None]:
        calls.append(cursor)
        start = int(cursor or 0)
        chunk = [{"n": n} for n in rows[start : start + size]]
        return chunk, str(start + size) if start + size < len(rows) else None

    return page, calls


def test_the_cli_lists_one_page_and_hands_back_the_cursor():
    page, calls = pages_of(list(range(7)), 3)
    listing = Listing(status=None, thing=None, limit=3, cursor=None, follow=False)
    rows, cursor = collect(page, listing)
    assert [r["n"] for r in rows] == [0, 1, 2] and cursor == "3" and calls == [None]


def test_the_cli_follows_every_cursor_with_all():
    page, calls = pages_of(list(range(7)), 3)
    listing = Listing(status=None, thing=None, limit=3, cursor="3", follow=True)
    rows, cursor = collect(page, listing)
    assert [r["n"] for r in rows] == [3, 4, 5, 6] and cursor is None and calls == ["3", "6"]


@pytest.mark.parametrize("limit", ["0", "500"])
def test_the_cli_bounds_the_page_size(limit):
    with pytest.raises(CliError, match="between 1 and 200"):
        invoke(["tickets", "list", "--limit", limit, "--json"])

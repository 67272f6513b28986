"""The calendar adapter on moto (`mock_aws`, FieldTable from template.yaml): conditional
cell writes refuse overlaps, freeing is atomic with the status change, reads by index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.adapters.field_items import NotOnCellBoundary, book_items, cells
from aftercare.domain.ports import BookingConflict, SlotTaken, TicketAlreadyBooked
from aftercare.models.field import BookingStatus, Partner
from aftercare.models.tickets import TimelineEntry
from moto import mock_aws

from tests.fakes.field import booking, engineer, field_stores

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
NINE = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1").client("dynamodb")


@pytest.fixture
def stores(ddb: Any) -> tuple[DynamoCalendar, DynamoEngineerDirectory]:
    return field_stores(ddb)


@pytest.fixture
def calendar(stores: tuple[DynamoCalendar, DynamoEngineerDirectory]) -> DynamoCalendar:
    return stores[0]


def timeline(ddb: Any, ticket_id: str) -> list[str]:
    items = ddb.query(
        TableName="aftercare-tickets-test",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :evt)",
        ExpressionAttributeValues={":pk": {"S": f"TICKET#{ticket_id}"}, ":evt": {"S": "EVT#"}},
    )["Items"]
    return [i["kind"]["S"] for i in items]


def test_book_request_writes_every_cell_conditionally_in_one_transaction():
    # Given a 90-minute booking
    visit = booking(NINE, 90)
    audit = TimelineEntry(at=NOW, kind="visit_booked", actor="t")
    # When its transaction is built
    items = book_items("F", "T", visit, holder=None, now=NOW, audit=audit)
    puts = [
        i.request["Put"] for i in items if i.request["Put"]["Item"]["pk"]["S"].startswith("CAL#")
    ]
    # Then six cells, each conditioned on being free, expired or the writer's own
    assert [p["Item"]["sk"]["S"] for p in puts] == [
        "2026-12-08T09:00Z", "2026-12-08T09:15Z", "2026-12-08T09:30Z",
        "2026-12-08T09:45Z", "2026-12-08T10:00Z", "2026-12-08T10:15Z",
    ]  # fmt: skip
    assert {p["ConditionExpression"] for p in puts} == {
        "attribute_not_exists(pk) OR expires_at < :now OR holder = :me"
    }


def test_intervals_off_the_grid_or_too_long_for_one_transaction_are_refused():
    with pytest.raises(NotOnCellBoundary):
        cells(NINE + timedelta(minutes=5), NINE + timedelta(hours=1))
    assert len(cells(NINE, NINE + timedelta(hours=8))) == 32
    with pytest.raises(NotOnCellBoundary):
        cells(NINE, NINE + timedelta(hours=8, minutes=15))


def test_overlapping_booking_is_slot_taken_and_leaves_nothing(calendar, ddb):
    # Given a booking 09:00-10:00
    calendar.book(booking(NINE, 60, ticket_id="T-1"), NOW)
    # When another ticket books 09:45-10:45 on the same engineer
    other = booking(NINE + timedelta(minutes=45), 60, ticket_id="T-2")
    with pytest.raises(SlotTaken):
        calendar.book(other, NOW)
    # Then nothing of it was written: not the booking, not its free cells, not its audit
    assert calendar.bookings_for_ticket("T-2") == []
    assert [b.start for b in calendar.busy("E-ada", NINE, NINE + timedelta(hours=3), NOW)] == [NINE]
    assert timeline(ddb, "T-2") == []


def test_adjacent_bookings_and_other_engineers_do_not_conflict(calendar):
    calendar.book(booking(NINE, 60, ticket_id="T-1"), NOW)
    calendar.book(booking(NINE + timedelta(hours=1), 60, ticket_id="T-2"), NOW)
    calendar.book(booking(NINE, 60, ticket_id="T-3", engineer_id="E-bob"), NOW)
    assert len(calendar.busy("E-ada", NINE, NINE + timedelta(hours=3), NOW)) == 2


def test_hold_blocks_others_until_it_expires_then_the_holder_books_it(calendar):
    # Given a customer's hold for 5 minutes
    calendar.hold(
        engineer_id="E-ada", start=NINE, end=NINE + timedelta(hours=1),
        holder="T-1", expires_at=NOW + timedelta(minutes=5), now=NOW,
    )  # fmt: skip
    # When someone else books it before the hold expires: refused
    with pytest.raises(SlotTaken):
        calendar.book(booking(NINE, 60, ticket_id="T-2"), NOW + timedelta(minutes=1))
    # The holder itself books it
    calendar.book(booking(NINE, 60, ticket_id="T-1"), NOW + timedelta(minutes=2), holder="T-1")
    assert [b.ticket_id for b in calendar.bookings_for_ticket("T-1")] == ["T-1"]


def test_an_expired_hold_is_free_without_any_sweep(calendar):
    calendar.hold(
        engineer_id="E-ada", start=NINE, end=NINE + timedelta(hours=1),
        holder="T-1", expires_at=NOW + timedelta(minutes=5), now=NOW,
    )  # fmt: skip
    later = NOW + timedelta(minutes=6)
    assert calendar.busy("E-ada", NINE, NINE + timedelta(hours=1), later) == []
    calendar.book(booking(NINE, 60, ticket_id="T-2"), later)


def test_a_ticket_has_one_live_booking(calendar):
    first = booking(NINE, 60, ticket_id="T-1")
    calendar.book(first, NOW)
    with pytest.raises(TicketAlreadyBooked) as caught:
        calendar.book(booking(NINE + timedelta(hours=3), 60, ticket_id="T-1"), NOW)
    assert caught.value.booking_id == first.booking_id


def test_cancel_frees_the_time_and_the_ticket_in_the_same_write(calendar, ddb):
    # Given a booking
    visit = booking(NINE, 60, ticket_id="T-1")
    calendar.book(visit, NOW)
    # When it is cancelled
    done = calendar.set_status(
        visit, BookingStatus.CANCELLED, 1, actor="user:mgr", now=NOW, reason="customer away"
    )
    # Then its time and its ticket are free, and the timeline has both changes
    assert done.status is BookingStatus.CANCELLED and done.version == 2
    assert calendar.get_booking(visit.booking_id).reason == "customer away"
    assert calendar.busy("E-ada", NINE, NINE + timedelta(hours=1), NOW) == []
    calendar.book(booking(NINE, 60, ticket_id="T-1"), NOW)
    assert sorted(timeline(ddb, "T-1")) == ["visit_booked", "visit_booked", "visit_cancelled"]


def test_status_change_with_a_stale_version_is_a_conflict(calendar):
    visit = booking(NINE, 60)
    calendar.book(visit, NOW)
    calendar.set_status(visit, BookingStatus.EN_ROUTE, 1, now=NOW)
    with pytest.raises(BookingConflict):
        calendar.set_status(visit, BookingStatus.CANCELLED, 1, now=NOW)


def test_live_status_changes_keep_the_time_taken(calendar):
    visit = booking(NINE, 60)
    calendar.book(visit, NOW)
    moved = calendar.set_status(visit, BookingStatus.EN_ROUTE, 1, now=NOW)
    assert moved.status is BookingStatus.EN_ROUTE
    assert len(calendar.busy("E-ada", NINE, NINE + timedelta(hours=1), NOW)) == 1


def test_reschedule_to_an_overlapping_window_hands_cells_over(calendar):
    # Given a booking 09:00-10:00
    old = booking(NINE, 60, ticket_id="T-1")
    calendar.book(old, NOW)
    # When it moves 30 minutes later (sharing 09:30-10:00)
    new = booking(
        NINE + timedelta(minutes=30), 60, ticket_id="T-1", rescheduled_from=old.booking_id
    )
    calendar.reschedule(old, new, NOW)
    # Then only the new window is taken, and the old booking is cancelled
    busy = calendar.busy("E-ada", NINE, NINE + timedelta(hours=3), NOW)
    assert [(b.start, b.end, b.booking_id) for b in busy] == [(new.start, new.end, new.booking_id)]
    assert calendar.get_booking(old.booking_id).status is BookingStatus.CANCELLED


def test_reschedule_onto_taken_time_changes_nothing(calendar):
    old = booking(NINE, 60, ticket_id="T-1")
    calendar.book(old, NOW)
    calendar.book(booking(NINE + timedelta(hours=2), 60, ticket_id="T-2"), NOW)
    with pytest.raises(SlotTaken):
        calendar.reschedule(old, booking(NINE + timedelta(hours=2), 60, ticket_id="T-1"), NOW)
    assert calendar.get_booking(old.booking_id).status is BookingStatus.SCHEDULED


def test_reads_by_engineer_day_and_board_by_region(calendar):
    calendar.book(booking(NINE, 60, ticket_id="T-1"), NOW)
    calendar.book(booking(NINE, 60, ticket_id="T-2", engineer_id="E-li", region="ap-east"), NOW)
    day = date(2026, 12, 8)
    assert [b.ticket_id for b in calendar.bookings_for_engineer("E-ada", day)] == ["T-1"]
    assert {b.ticket_id for b in calendar.board(day)} == {"T-1", "T-2"}
    assert [b.ticket_id for b in calendar.board(day, region="ap-east")] == ["T-2"]
    assert calendar.board(day + timedelta(days=1)) == []


def test_directory_round_trip_and_region_filter(stores):
    _, directory = stores
    directory.put_engineer(engineer("E-ada"))
    directory.put_engineer(engineer("E-li", regions=["ap-east"], time_zone="Asia/Shanghai"))
    partner = Partner(
        partner_id="PTN-east", name="East Repairs", regions=["ap-east"],
        daily_job_cap=6, cost_per_visit=80, promised_response_h=24,
    )  # fmt: skip
    directory.put_partner(partner)
    assert directory.get_engineer("E-ada") == engineer("E-ada")
    assert directory.get_engineer("E-nobody") is None
    assert [e.engineer_id for e in directory.list_engineers("ap-east")] == ["E-li"]
    assert len(directory.list_engineers()) == 2
    assert directory.list_partners() == [partner]


def test_an_unconfirmed_hold_blocks_any_overlap_not_only_its_own_window(calendar):
    # Given a customer's offer held 09:00-10:00 (not booked: unconfirmed)
    calendar.hold(
        engineer_id="E-ada", start=NINE, end=NINE + timedelta(hours=1),
        holder="hold:T-1", expires_at=NOW + timedelta(minutes=5), now=NOW,
    )  # fmt: skip
    # When another ticket's booking or hold overlaps only its last quarter hour
    # Then both are refused, and nothing of them was written
    with pytest.raises(SlotTaken):
        calendar.book(booking(NINE + timedelta(minutes=45), 60, ticket_id="T-2"), NOW)
    with pytest.raises(SlotTaken):
        calendar.hold(
            engineer_id="E-ada", start=NINE - timedelta(minutes=30),
            end=NINE + timedelta(minutes=15), holder="hold:T-3",
            expires_at=NOW + timedelta(minutes=5), now=NOW,
        )  # fmt: skip
    assert calendar.bookings_for_ticket("T-2") == []
    # While the time right after it is free
    calendar.book(booking(NINE + timedelta(hours=1), 60, ticket_id="T-2"), NOW)
    busy = calendar.busy("E-ada", NINE - timedelta(hours=1), NINE + timedelta(hours=3), NOW)
    assert [(b.start, b.booking_id is None) for b in busy] == [
        (NINE, True),
        (NINE + timedelta(hours=1), False),
    ]

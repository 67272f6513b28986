"""Booked repairs: availability (working hours in the engineer's zone, DST, absences), slot
offers that hold, booking, retries, reschedule and cancel, on the real calendar adapter
(moto) with the ticket read from a fake lookup."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import boto3
import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.availability import (
    InvalidSlot,
    Window,
    parse_slot_id,
    slot_id,
    working_windows,
)
from aftercare.domain.calendar import (
    FieldBooking,
    InvalidBookingChange,
    TicketNotBookable,
    load_booking_policy,
)
from aftercare.domain.ports import (
    ConcurrentUpdate,
    SlotTaken,
    TicketAlreadyBooked,
    TicketNotFound,
)
from aftercare.domain.tickets import Ticket, TicketStatus
from aftercare.models.field import Absence, BookingSource, BookingStatus, EngineerKind, Shift
from moto import mock_aws

from tests.fakes.diagnostics import make_ticket
from tests.fakes.field import Tickets, engineer, field_stores

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # a Monday, 06:00 in Dublin
CUSTOMER = Caller(
    subject="s1", username="cust-0001", groups=frozenset({"customers"}), customer_id="c-0001"
)
OTHER = Caller(
    subject="s2", username="cust-0002", groups=frozenset({"customers"}), customer_id="c-0002"
)
MANAGER = Caller(subject="s3", username="mgr-grace", groups=frozenset({"managers"}))


def ticket(ticket_id: str, customer_id: str = "c-0001", **changes: Any) -> Ticket:
    return make_ticket(thing=f"rt-x-{ticket_id}").model_copy(
        update={"ticket_id": ticket_id, "customer_id": customer_id, **changes}
    )


@pytest.fixture
def field(fake_aws_credentials: None) -> Iterator[FieldBooking]:
    with mock_aws():
        ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        calendar, directory = field_stores(ddb)
        directory.put_engineer(engineer("E-ada"))
        yield FieldBooking(
            tickets=Tickets(ddb, ticket("T-1"), ticket("T-2", "c-0002"), ticket("T-3")),
            directory=directory,
            calendar=calendar,
            calendar_reads=calendar,
            bookings=calendar,
            policy=load_booking_policy(),
        )


# ---------------------------------------------------------------- availability (pure)


def test_shifts_follow_the_engineers_wall_clock_across_dst():
    # Given an engineer working 09:00-17:00 in Dublin
    ada = engineer("E-ada")
    # When the week of the spring change (29 March 2026) is laid out in UTC
    windows = working_windows(
        ada, datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    )
    # Then Friday's shift is 09:00Z (GMT) and Monday's 08:00Z (IST): always 09:00 local
    assert windows == [
        Window(datetime(2026, 3, 27, 9, tzinfo=UTC), datetime(2026, 3, 27, 17, tzinfo=UTC)),
        Window(datetime(2026, 3, 30, 8, tzinfo=UTC), datetime(2026, 3, 30, 16, tzinfo=UTC)),
    ]


def test_a_shift_across_the_fall_back_night_is_an_hour_longer():
    night = engineer("E-owl", working_hours={"sat": [Shift(start=time(0), end=time(4))]})
    [window] = working_windows(
        night, datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)
    )
    assert window.end - window.start == timedelta(hours=4)  # Sat 24 Oct: before the change
    [sunday] = working_windows(
        engineer("E-owl", working_hours={"sun": [Shift(start=time(0), end=time(4))]}),
        datetime(2026, 10, 23, tzinfo=UTC),
        datetime(2026, 10, 26, tzinfo=UTC),
    )
    assert sunday.end - sunday.start == timedelta(hours=5)  # Sun 25 Oct: 01:00-02:00 twice


def test_absences_are_cut_out_of_working_time():
    away = Absence(
        start=datetime(2026, 12, 8, 11, tzinfo=UTC), end=datetime(2026, 12, 8, 13, tzinfo=UTC)
    )
    ada = engineer("E-ada", absences=[away])
    day = datetime(2026, 12, 8, tzinfo=UTC)
    assert working_windows(ada, day, day + timedelta(days=1)) == [
        Window(datetime(2026, 12, 8, 9, tzinfo=UTC), datetime(2026, 12, 8, 11, tzinfo=UTC)),
        Window(datetime(2026, 12, 8, 13, tzinfo=UTC), datetime(2026, 12, 8, 17, tzinfo=UTC)),
    ]


def test_slot_ids_name_engineer_start_and_length():
    at = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
    ref = parse_slot_id(slot_id("E-ada_1", at, 90))
    assert (ref.engineer_id, ref.start, ref.minutes) == ("E-ada_1", at, 90)
    for bad in (
        "S-E-ada", "X-E-ada.20261208T0930Z.90", "S-E-ada.20261208T0931Z.90", "S-E.x.90",
        "S-E-ada.20261208T0930Z.495", "S-E-ada.99991231T2345Z.60", "S-E-ada.20261208T0930Z.0",
    ):  # fmt: skip
        with pytest.raises(InvalidSlot):
            parse_slot_id(bad)


# ---------------------------------------------------------------- offers and bookings


def test_offers_are_held_so_another_customer_is_not_promised_them(field):
    # Given customer 1 was offered slots
    first = field.offer_slots(CUSTOMER, "T-1", NOW)
    # When customer 2 asks for slots meanwhile
    second = field.offer_slots(OTHER, "T-2", NOW)
    # Then nothing offered to 1 is offered to 2, and every offer is in working time, held
    assert first and second
    assert not {s.slot_id for s in first} & {s.slot_id for s in second}
    earliest = first[0]
    assert earliest.start == datetime(2026, 12, 7, 9, tzinfo=UTC)  # lead time from 06:00
    assert earliest.local_start == "2026-12-07T09:00:00+00:00"
    assert earliest.hold_expires_at == NOW + timedelta(minutes=5)
    # and customer 2 cannot book customer 1's held slot
    with pytest.raises(SlotTaken):
        field.book(OTHER, "T-2", earliest.slot_id, NOW + timedelta(minutes=1))


def test_the_offered_customer_books_and_a_retry_returns_the_same_booking(field):
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    booking, created = field.book(CUSTOMER, "T-1", slot.slot_id, NOW + timedelta(minutes=1))
    again, created_again = field.book(CUSTOMER, "T-1", slot.slot_id, NOW + timedelta(minutes=2))
    assert created and not created_again and again == booking
    assert booking.source is BookingSource.CUSTOMER and booking.created_by == "user:cust-0001"
    # a different slot for the same ticket is not a retry
    other = field.offer_slots(CUSTOMER, "T-1", NOW)[-1]
    with pytest.raises(TicketAlreadyBooked):
        field.book(CUSTOMER, "T-1", other.slot_id, NOW)


def test_booking_a_slot_schedules_the_ticket_once_and_a_retry_does_not_fail(field):
    # Given a customer's open ticket and an offered slot
    assert field.tickets.tickets["T-1"].status is TicketStatus.OPEN
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    # When they book it, and the request is retried
    booking, _ = field.book(CUSTOMER, "T-1", slot.slot_id, NOW + timedelta(minutes=1))
    field.book(CUSTOMER, "T-1", slot.slot_id, NOW + timedelta(minutes=2))
    # Then the ticket is scheduled by one status change that names the booking
    assert field.tickets.tickets["T-1"].status is TicketStatus.SCHEDULED
    assert field.tickets.tickets["T-1"].dispatch_state == "booked"
    timeline = field.tickets.get_ticket("T-1").timeline
    [change] = [e for e in timeline if e.kind == "status_changed"]
    assert change.actor == "user:cust-0001"
    assert change.detail["reason"] == f"visit {booking.booking_id} booked"
    assert [e.kind for e in timeline if e.kind.startswith("visit_")] == ["visit_booked"]


def test_a_ticket_that_changed_meanwhile_fails_the_booking_and_leaves_nothing_behind(field):
    # Given an offered slot, and another writer changing the ticket right after it is read
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    field.tickets.races = 1
    # When the customer books
    with pytest.raises(ConcurrentUpdate):
        field.book(CUSTOMER, "T-1", slot.slot_id, NOW)
    # Then there is no booking, the engineer's time is still only the ticket's own hold,
    # and the ticket is as the other writer left it
    assert field.bookings.bookings_for_ticket("T-1") == []
    busy = field.calendar_reads.busy("E-ada", slot.start, slot.end, NOW)
    assert [b.booking_id for b in busy] == [None]
    assert field.tickets.tickets["T-1"].status is TicketStatus.OPEN
    # When they retry with the ticket read again, it books and schedules in one write
    booking, created = field.book(CUSTOMER, "T-1", slot.slot_id, NOW)
    assert created and field.tickets.tickets["T-1"].status is TicketStatus.SCHEDULED
    assert [b.booking_id for b in field.bookings.bookings_for_ticket("T-1")] == [booking.booking_id]


def test_cancelling_re_opens_the_ticket_for_the_customer_to_choose_again(field):
    # Given a customer's booked visit
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    booking, _ = field.book(CUSTOMER, "T-1", slot.slot_id, NOW)
    # When they cancel it
    field.cancel(CUSTOMER, booking.booking_id, "away that week", NOW + timedelta(minutes=1))
    # Then, in the same write, the ticket is open again, flagged for a visit and waiting for
    # the customer's choice (the Dispatcher does not book for them)
    after = field.tickets.tickets["T-1"]
    assert after.status is TicketStatus.OPEN and after.needs_onsite_dispatch
    assert after.dispatch_state == "awaiting_customer"
    # And they are offered slots again, and can book one
    again = field.offer_slots(CUSTOMER, "T-1", NOW + timedelta(minutes=2))
    assert again
    _, created = field.book(CUSTOMER, "T-1", again[0].slot_id, NOW + timedelta(minutes=3))
    assert created and field.tickets.tickets["T-1"].status is TicketStatus.SCHEDULED


def test_a_cancellation_racing_a_ticket_change_cancels_nothing(field):
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    booking, _ = field.book(CUSTOMER, "T-1", slot.slot_id, NOW)
    field.tickets.races = 1
    with pytest.raises(ConcurrentUpdate):
        field.cancel(CUSTOMER, booking.booking_id, "changed my mind", NOW)
    assert field.bookings.get_booking(booking.booking_id).status is BookingStatus.SCHEDULED
    assert field.tickets.tickets["T-1"].status is TicketStatus.SCHEDULED


def test_a_staff_assignment_schedules_the_ticket_but_never_moves_it_back(field):
    field.assign(MANAGER, "T-3", "E-ada", datetime(2026, 12, 8, 10, tzinfo=UTC), NOW)
    assert field.tickets.tickets["T-3"].status is TicketStatus.SCHEDULED
    # a ticket already under repair keeps its status when another visit is put in
    field.tickets.put(ticket("T-1", status=TicketStatus.IN_REPAIR))
    field.assign(MANAGER, "T-1", "E-ada", datetime(2026, 12, 9, 10, tzinfo=UTC), NOW)
    assert field.tickets.tickets["T-1"].status is TicketStatus.IN_REPAIR


def test_an_expired_offer_is_anyones(field):
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    later = NOW + timedelta(minutes=6)
    booking, _ = field.book(OTHER, "T-2", slot.slot_id, later)
    assert booking.ticket_id == "T-2"
    with pytest.raises(SlotTaken):
        field.book(CUSTOMER, "T-1", slot.slot_id, later)


def test_slots_outside_working_time_or_of_the_wrong_length_are_refused(field):
    for bad in (
        slot_id("E-ada", datetime(2026, 12, 8, 7, tzinfo=UTC), 60),  # before 09:00
        slot_id("E-ada", datetime(2026, 12, 8, 10, tzinfo=UTC), 90),  # connectivity is 60
        slot_id("E-ada", datetime(2026, 12, 12, 10, tzinfo=UTC), 60),  # Saturday
        slot_id("E-nobody", datetime(2026, 12, 8, 10, tzinfo=UTC), 60),
    ):
        with pytest.raises(InvalidSlot):
            field.book(CUSTOMER, "T-1", bad, NOW)


def test_customers_see_only_their_own_tickets_and_closed_tickets_are_not_booked(field):
    with pytest.raises(TicketNotFound):
        field.offer_slots(OTHER, "T-1", NOW)
    field.tickets.put(ticket("T-3", status=TicketStatus.RESOLVED))
    with pytest.raises(TicketNotBookable):
        field.offer_slots(CUSTOMER, "T-3", NOW)


def test_reschedule_frees_the_old_window_and_cancel_frees_the_new(field):
    # Given a booking
    slots = field.offer_slots(CUSTOMER, "T-1", NOW)
    booking, _ = field.book(CUSTOMER, "T-1", slots[0].slot_id, NOW)
    # When it moves to another offered slot
    moved = field.reschedule(CUSTOMER, booking.booking_id, slots[1].slot_id, "later suits", NOW)
    # Then the old window can be booked by someone else, the new one cannot
    field.book(OTHER, "T-2", slots[0].slot_id, NOW)
    with pytest.raises(SlotTaken):
        field.assign(MANAGER, "T-3", "E-ada", slots[1].start, NOW)
    # When the moved booking is cancelled, its window is free for a dispatcher
    cancelled = field.cancel(CUSTOMER, moved.booking_id, "fixed it myself", NOW)
    assert cancelled.status is BookingStatus.CANCELLED and cancelled.reason == "fixed it myself"
    assert (
        field.assign(MANAGER, "T-3", "E-ada", slots[1].start, NOW).source
        is BookingSource.DISPATCHER
    )
    with pytest.raises(InvalidBookingChange):
        field.cancel(CUSTOMER, moved.booking_id, "again", NOW)
    assert [b.status for b in field.bookings_of(CUSTOMER, "T-1")] == [
        BookingStatus.CANCELLED, BookingStatus.CANCELLED
    ]  # fmt: skip


def test_only_staff_assign_and_only_on_the_quarter_hour(field):
    with pytest.raises(Forbidden):
        field.assign(CUSTOMER, "T-1", "E-ada", datetime(2026, 12, 8, 10, tzinfo=UTC), NOW)
    with pytest.raises(InvalidSlot):
        field.assign(MANAGER, "T-1", "E-ada", datetime(2026, 12, 8, 10, 5, tzinfo=UTC), NOW)


def test_partners_fill_in_only_when_in_house_offers_run_short(field):
    field.directory.put_engineer(
        engineer("E-ptn", kind=EngineerKind.PARTNER, partner="PTN-west", working_hours={})
    )
    assert all(s.partner is None for s in field.offer_slots(CUSTOMER, "T-1", NOW))


# ---------------------------------------------------------------- the SLA in offers

TUESDAY_NOON = datetime(2026, 12, 8, 12, tzinfo=UTC)


def with_due(field: FieldBooking, ticket_id: str, due: datetime) -> None:
    field.tickets.put(ticket(ticket_id, sla_resolution_due=due))


def test_offers_inside_the_sla_only_when_some_fit(field):
    # Given a ticket due Tuesday noon (Ada works 09:00-17:00 Dublin, UTC in December)
    with_due(field, "T-1", TUESDAY_NOON)
    # When the customer asks for slots (default policy: late slots only as a fallback)
    offers = field.offer_slots(CUSTOMER, "T-1", NOW)
    # Then every offer ends by the deadline and says so
    assert offers and all(o.within_sla and o.end <= TUESDAY_NOON for o in offers)
    assert len(offers) == 4  # two a day, Monday and Tuesday morning


def test_when_nothing_fits_the_sla_later_slots_are_offered_marked(field):
    # Given a ticket whose deadline passes before anyone can get there
    with_due(field, "T-1", NOW + timedelta(hours=1))
    # When the customer asks for slots
    offers = field.offer_slots(CUSTOMER, "T-1", NOW)
    # Then they still get slots, each marked outside the SLA
    assert len(offers) == field.policy.max_offers
    assert not any(o.within_sla for o in offers)


def test_policy_can_leave_late_slots_out_or_append_them(field):
    with_due(field, "T-1", TUESDAY_NOON)
    with_due(field, "T-3", NOW + timedelta(hours=1))
    # Given a policy that never offers past the SLA
    field.policy = field.policy.model_copy(update={"offer_after_sla": "never"})
    # Then a ticket nobody can reach in time gets no slots
    assert field.offer_slots(CUSTOMER, "T-3", NOW) == []
    # Given a policy that appends late slots after the in-SLA ones
    field.policy = field.policy.model_copy(update={"offer_after_sla": "after"})
    offers = field.offer_slots(CUSTOMER, "T-1", NOW)
    # Then the in-SLA ones come first, then the marked later ones, up to max_offers
    assert [o.within_sla for o in offers] == [True] * 4 + [False] * 4
    assert offers[4].start > offers[3].start


def test_booking_a_late_slot_notes_it_on_the_timeline(field):
    # Given a ticket due Tuesday noon, and a late slot the customer picks anyway
    with_due(field, "T-1", TUESDAY_NOON)
    field.policy = field.policy.model_copy(update={"offer_after_sla": "after"})
    late = next(o for o in field.offer_slots(CUSTOMER, "T-1", NOW) if not o.within_sla)
    # When they book it
    booking, _ = field.book(CUSTOMER, "T-1", late.slot_id, NOW)
    # Then the booking's own write notes it is outside the SLA, naming booking and deadline
    timeline = field.tickets.get_ticket("T-1").timeline
    [note] = [e for e in timeline if e.kind == "booked_outside_sla"]
    assert note.detail["booking_id"] == booking.booking_id
    assert note.detail["sla_resolution_due"] == TUESDAY_NOON.isoformat()
    assert field.tickets.tickets["T-1"].status is TicketStatus.SCHEDULED


def test_booking_inside_the_sla_writes_no_note(field):
    with_due(field, "T-1", TUESDAY_NOON)
    slot = field.offer_slots(CUSTOMER, "T-1", NOW)[0]
    field.book(CUSTOMER, "T-1", slot.slot_id, NOW)
    timeline = field.tickets.get_ticket("T-1").timeline
    assert "booked_outside_sla" not in [e.kind for e in timeline]


# ---------------------------------------------------------------- reschedule and the ticket


def test_a_reschedule_racing_a_ticket_change_moves_nothing(field):
    # Given a booked visit, and another writer changing the ticket right after it is read
    slots = field.offer_slots(CUSTOMER, "T-1", NOW)
    booking, _ = field.book(CUSTOMER, "T-1", slots[0].slot_id, NOW)
    before = field.tickets.tickets["T-1"]
    field.tickets.races = 1
    # When the customer reschedules
    with pytest.raises(ConcurrentUpdate):
        field.reschedule(CUSTOMER, booking.booking_id, slots[1].slot_id, "later suits", NOW)
    # Then the old booking stands, the new time holds no booking, and the ticket is as the
    # other writer left it (one version on, no reschedule on its timeline)
    assert field.bookings.get_booking(booking.booking_id).status is BookingStatus.SCHEDULED
    assert [b.booking_id for b in field.bookings.bookings_for_ticket("T-1")] == [booking.booking_id]
    busy = field.calendar_reads.busy("E-ada", slots[1].start, slots[1].end, NOW)
    assert [b.booking_id for b in busy] == [None]
    after = field.tickets.get_ticket("T-1")
    assert after.ticket.version == before.version + 1
    assert "visit_rescheduled" not in [e.kind for e in after.timeline]
    # When they retry with the ticket read again, it moves, and the ticket's version with it
    moved = field.reschedule(CUSTOMER, booking.booking_id, slots[1].slot_id, "later suits", NOW)
    assert field.bookings.get_booking(moved.booking_id).status is BookingStatus.SCHEDULED
    assert field.tickets.tickets["T-1"].version == before.version + 2

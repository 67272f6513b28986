"""The demo's field phase: which tickets it asks visits for, and how double bookings are
counted (the figures the summary reports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.models.field import BookingStatus
from aftercare.models.tickets import CustomerTier, Priority

from infra.demo_field import THIN_REGION, overlaps, pick_tickets, unbooked_reasons
from tests.fakes.diagnostics import make_ticket
from tests.fakes.field import booking

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Store:
    def __init__(self, *tickets: Any) -> None:
        self.tickets = list(tickets)

    def list_tickets(self, *, status: str | None = None) -> list[Any]:
        return [t for t in self.tickets if status is None or t.status == status]


def ticket(n: int, region: str, **update: Any) -> Any:
    return make_ticket(thing=f"dev-{n}").model_copy(
        update={"ticket_id": f"T-{n}", "region": region, **update}
    )


def test_the_thin_region_gets_tickets_its_urgent_ones_first_and_decided_ones_are_left_out():
    # Given open tickets in the thin region (one urgent, one VIP, two ordinary) and elsewhere,
    # one of them already without a candidate
    store = Store(
        ticket(1, THIN_REGION, priority=Priority.P3),
        ticket(2, THIN_REGION, priority=Priority.P1),
        ticket(3, THIN_REGION, priority=Priority.P3, customer_tier=CustomerTier.VIP),
        ticket(4, THIN_REGION, priority=Priority.P3),
        ticket(5, "eu-west"),
        ticket(6, "eu-west", dispatch_state="no_candidate"),
        ticket(7, "us-east"),
    )
    # When the demo picks six
    picked = [t.ticket_id for t in pick_tickets(store, 6)]
    # Then half come from the thin region, urgent and VIP first; then the rest that can be booked
    assert picked == ["T-2", "T-3", "T-1", "T-5", "T-7"]


def test_overlapping_bookings_that_held_the_time_together_are_double_bookings():
    start = NOW + timedelta(days=1)
    first = booking(start, 60, now=NOW)
    # back to back, or another engineer: none
    assert overlaps([first, booking(start + timedelta(minutes=60), 60, now=NOW)]) == 0
    assert overlaps([first, booking(start, 60, engineer_id="E-other", now=NOW)]) == 0
    # two live bookings of the same time: one
    assert overlaps([first, booking(start + timedelta(minutes=30), 60, now=NOW)]) == 1
    # a visit booked into time a cancelled (or unfinished) one gave back: none
    later = NOW + timedelta(hours=2)
    gone = booking(start, 60, now=NOW, status=BookingStatus.CANNOT_COMPLETE, updated_at=later)
    again = booking(start, 60, now=later + timedelta(minutes=1))
    assert overlaps([gone, again]) == 0
    # ... but one booked while the other still held it is one
    assert overlaps([gone, booking(start, 60, now=later - timedelta(minutes=1))]) == 1


def test_tickets_without_a_visit_say_why_from_their_dispatch_state():
    # Given six tickets a visit was asked for: one booked, and the others left by dispatch in
    # each state that is not a booking (one decided only after the demo stopped waiting)
    visited = ticket(1, "eu-west", dispatch_state="booked")
    asked = [
        visited,
        ticket(2, "eu-west", dispatch_state="no_candidate"),
        ticket(3, "eu-west", dispatch_state="awaiting_parts"),
        ticket(4, "eu-west", dispatch_state="awaiting_customer"),
        ticket(5, "eu-west", dispatch_state="awaiting_customer"),
        ticket(6, "eu-west", dispatch_state="wanted"),
        ticket(7, "eu-west", dispatch_state=None),
        ticket(8, "eu-west", dispatch_state="booked"),
    ]
    booked = [booking(NOW + timedelta(days=1), 60, ticket_id=visited.ticket_id, now=NOW)]
    # When the summary counts the unbooked ones
    reasons = unbooked_reasons(asked, booked)
    # Then each is counted once under the reason its state gives, and the booked one not at all
    assert reasons == {
        "no_candidate": 1,
        "waiting_for_parts": 1,
        "awaiting_customer": 2,
        "timed_out": 3,
    }


def test_when_every_ticket_got_a_visit_every_reason_is_zero():
    asked = [ticket(1, "eu-west", dispatch_state="booked")]
    booked = [booking(NOW + timedelta(days=1), 60, ticket_id="T-1", now=NOW)]
    assert set(unbooked_reasons(asked, booked).values()) == {0}

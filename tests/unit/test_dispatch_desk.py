"""The dispatch desk: an engineer asks for a visit, a manager assigns one by hand through the
same conditional calendar write (slot_taken on overlap, no bypass), staff read the board."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.dispatch_desk import assign, board, request_visit
from aftercare.domain.dispatching import EngineerNotEligible, InvalidStart, NotDispatchable
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.ports.field import SlotTaken
from aftercare.models.field import BookingSource, BookingStatus
from aftercare.models.tickets import TicketFlag, TicketStatus

from tests.fakes.diagnostics import make_ticket
from tests.fakes.dispatch import MONDAY, booking
from tests.unit.test_dispatching import World, visit_ticket

MANAGER = Caller(subject="m", username="mia", groups=frozenset({"managers"}))
ENGINEER = Caller(subject="e", username="eve", groups=frozenset({"engineers"}))
NINE = MONDAY.replace(hour=9)


def test_an_engineer_asking_for_a_visit_flags_the_ticket_for_the_dispatcher() -> None:
    world = World(make_ticket("FAN-STALL", model="AC-HP"))
    state = request_visit(ENGINEER, world.ticket_id, "bearing noise", world.deps, now=MONDAY)
    assert state is DispatchState.WANTED
    assert TicketFlag.NEEDS_ONSITE_DISPATCH in world.ticket.flags
    assert world.ticket.dispatch_state == "wanted"
    assert world.tickets.timeline[-1].detail == {"reason": "bearing noise"}


def test_only_engineers_ask_for_visits_and_only_for_active_tickets() -> None:
    world = World(make_ticket("FAN-STALL", model="AC-HP", status=TicketStatus.RESOLVED))
    with pytest.raises(Forbidden):
        request_visit(MANAGER, world.ticket_id, "x", world.deps, now=MONDAY)
    with pytest.raises(NotDispatchable):
        request_visit(ENGINEER, world.ticket_id, "x", world.deps, now=MONDAY)


def test_a_manager_assigns_a_visit_and_the_ticket_is_scheduled() -> None:
    world = World(visit_ticket("P3"))
    booked = assign(MANAGER, world.ticket_id, "E-far", NINE, world.deps, now=MONDAY)
    assert booked.source is BookingSource.DISPATCHER and booked.engineer_id == "E-far"
    assert booked.start == NINE and booked.end == NINE + timedelta(minutes=60)  # connectivity
    assert world.ticket.status is TicketStatus.SCHEDULED
    assert world.ticket.dispatch_state == "booked"


def test_an_assignment_overlapping_a_live_booking_is_slot_taken() -> None:
    # Given the engineer already has a customer's visit 09:30-10:30
    world = World(visit_ticket("P3"))
    other = booking("E-far", NINE + timedelta(minutes=30))
    world.field.bookings[other.booking_id] = other
    # When a manager assigns 09:00-10:30 to them
    with pytest.raises(SlotTaken):
        assign(MANAGER, world.ticket_id, "E-far", NINE, world.deps, now=MONDAY)
    # Then nothing changed
    assert list(world.field.bookings) == [other.booking_id]
    assert world.ticket.status is TicketStatus.OPEN


def test_reassigning_moves_the_live_booking() -> None:
    world = World(visit_ticket("P3"))
    first = assign(MANAGER, world.ticket_id, "E-far", NINE, world.deps, now=MONDAY)
    second = assign(MANAGER, world.ticket_id, "E-near", NINE, world.deps, now=MONDAY)
    assert world.field.bookings[first.booking_id].status is BookingStatus.CANCELLED
    assert world.field.bookings[second.booking_id].status is BookingStatus.SCHEDULED
    assert second.booking_id != first.booking_id


@pytest.mark.parametrize(
    ("engineer_id", "start", "error"),
    [
        ("E-nobody", NINE, "no engineer"),
        ("E-far", MONDAY.replace(hour=16, minute=30), "does not work"),  # ends after 17:00
    ],
)
def test_assignments_outside_the_rules_are_refused(engineer_id: str, start, error: str) -> None:  # type: ignore[no-untyped-def]
    world = World(visit_ticket("P3"))
    with pytest.raises((EngineerNotEligible, LookupError), match=error):
        assign(MANAGER, world.ticket_id, engineer_id, start, world.deps, now=MONDAY)


def test_an_engineer_without_the_skill_is_not_assigned() -> None:
    world = World(visit_ticket("P1"))  # P1 needs level 2
    world.field.put_engineer(world.field.engineers["E-far"].model_copy(update={"skills": []}))
    with pytest.raises(EngineerNotEligible, match="skill_below_2"):
        assign(MANAGER, world.ticket_id, "E-far", NINE, world.deps, now=MONDAY)


def test_a_start_off_the_quarter_hour_is_refused() -> None:
    world = World(visit_ticket("P3"))
    with pytest.raises(InvalidStart):
        assign(MANAGER, world.ticket_id, "E-far", NINE.replace(minute=7), world.deps, now=MONDAY)
    assert world.field.bookings == {}


def test_only_managers_assign_and_staff_read_the_board() -> None:
    world = World(visit_ticket("P3"))
    with pytest.raises(Forbidden):
        assign(ENGINEER, world.ticket_id, "E-far", NINE, world.deps, now=MONDAY)
    booked = assign(MANAGER, world.ticket_id, "E-far", NINE, world.deps, now=MONDAY)
    assert board(ENGINEER, NINE.date(), "eu-west", world.deps) == [booked]
    assert board(ENGINEER, NINE.date(), "us-east", world.deps) == []
    customer = Caller(subject="c", username="c", groups=frozenset({"customers"}), customer_id="c1")
    with pytest.raises(Forbidden):
        board(customer, NINE.date(), None, world.deps)

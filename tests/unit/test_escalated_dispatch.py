"""SLA escalation sends a ticket back to dispatch whatever dispatch had decided before: a
ticket left waiting (for the customer, a candidate, parts) is dispatched again and booked; a
scheduled ticket whose visit misses the SLA is moved to an earlier feasible visit in one
reschedule write (no double booking); a visit that keeps the SLA stays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aftercare.adapters.escalation import advance_update
from aftercare.domain.dispatching import DispatchOutcome
from aftercare.domain.escalation import (
    first_tracker,
    load_escalation,
    plan_escalation,
)
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.redispatch import dispatch, visit_misses
from aftercare.domain.tickets import Ticket
from aftercare.models.field import LIVE_BOOKING_STATUSES, BookingSource, BookingStatus
from aftercare.models.tickets import TicketFlag, TicketStatus

from tests.fakes.dispatch import MONDAY, booking
from tests.unit.test_dispatching import World, visit_ticket

POLICY = load_escalation()
ESCALATED = [TicketFlag.NEEDS_ONSITE_DISPATCH, TicketFlag.PARTNERS_ALLOWED]


def escalated(ticket: Ticket) -> Ticket:
    """The ticket as the sweeper's redispatch step leaves it (applied like the adapter)."""
    tracker = first_tracker(ticket, POLICY)
    assert tracker is not None
    plan = plan_escalation(ticket, tracker, POLICY, ticket.sla_resolution_due)
    assert plan.redispatch and plan.flags is not None
    return ticket.model_copy(
        update={
            "flags": plan.flags,
            "dispatch_state": DispatchState.WANTED.value,
            "version": ticket.version + 1,
        }
    )


def opened_at_monday(ticket: Ticket) -> Ticket:
    return ticket.model_copy(
        update={"opened_at": MONDAY - timedelta(hours=2), "sla_response_due": MONDAY}
    )


@pytest.mark.parametrize("state", ["awaiting_customer", "no_candidate", "awaiting_parts"])
def test_a_redispatch_step_sends_a_waiting_ticket_back_to_the_dispatcher(state: str) -> None:
    # Given a P3 ticket dispatch left waiting (state) until the response deadline passed
    ticket = opened_at_monday(visit_ticket("P3", dispatch_state=state))
    tracker = first_tracker(ticket, POLICY)
    assert tracker is not None
    # When the sweeper acts on the due steps
    plan = plan_escalation(ticket, tracker, POLICY, MONDAY)
    # Then the redispatch step asks the Dispatcher to run again (dispatch_state = wanted,
    # written in the ticket's update), and the timeline entry says from which state
    assert plan.redispatch
    update = advance_update("Tickets", plan)
    assert "dispatch_state = :wanted" in update["UpdateExpression"]
    assert update["ExpressionAttributeValues"][":wanted"] == {"S": "wanted"}
    (entry,) = [e for e in plan.entries if e.detail["action"] == "redispatch_with_partners"]
    assert entry.detail["dispatch_state"] == state and entry.detail["redispatch"] is True


def test_a_ticket_under_repair_is_not_sent_back_to_dispatch() -> None:
    ticket = visit_ticket("P3", status=TicketStatus.IN_REPAIR, dispatch_state="booked")
    tracker = first_tracker(ticket.model_copy(update={"status": TicketStatus.OPEN}), POLICY)
    assert tracker is not None
    plan = plan_escalation(ticket, tracker, POLICY, ticket.sla_resolution_due)
    assert not plan.redispatch
    assert "dispatch_state" not in advance_update("Tickets", plan)["UpdateExpression"]
    entry = next(e for e in plan.entries if e.detail["action"] == "redispatch_with_partners")
    assert entry.detail["redispatch"] is False


def test_an_escalated_ticket_the_customer_never_booked_gets_its_visit_booked() -> None:
    # Given a standard P3 ticket waiting for the customer's choice, escalated
    world = World(escalated(visit_ticket("P3", dispatch_state="awaiting_customer")))
    # When the Dispatcher sees it (dispatch_state = wanted)
    outcome = world.dispatch()
    # Then the earliest feasible visit is booked for them (auto_book.escalated in the policy)
    assert outcome is not None and outcome.state is DispatchState.BOOKED
    assert outcome.booking is not None and outcome.booking.source is BookingSource.AUTO
    assert world.ticket.status is TicketStatus.SCHEDULED
    assert world.ticket.dispatch_state == DispatchState.BOOKED


def test_without_the_escalated_rule_the_customer_is_offered_slots_again() -> None:
    world = World(escalated(visit_ticket("P3", dispatch_state="awaiting_customer")))
    policy = world.deps.policy
    rules = policy.auto_book.model_copy(update={"escalated": False})
    world.deps = type(world.deps)(
        **{**world.deps.__dict__, "policy": policy.model_copy(update={"auto_book": rules})}
    )
    outcome = world.dispatch()
    assert outcome is not None and outcome.state is DispatchState.AWAITING_CUSTOMER
    assert world.field.bookings == {}


def scheduled_with(world_ticket: Ticket, engineer_id: str, start_offset_h: float) -> World:
    """A scheduled, escalated ticket whose live visit starts `start_offset_h` after MONDAY."""
    ticket = escalated(world_ticket).model_copy(update={"status": TicketStatus.SCHEDULED})
    world = World(ticket)
    visit = booking(
        engineer_id,
        MONDAY + timedelta(hours=start_offset_h),
        minutes=90,
        ticket_id=ticket.ticket_id,
        booking_id="B-late",
        source=BookingSource.AUTO,
    )
    world.field.bookings[visit.booking_id] = visit
    return world


def redispatched(world: World) -> DispatchOutcome | None:
    """The Dispatcher's entry on the ticket as it stands."""
    return dispatch(world.ticket, world.deps, now=MONDAY)


def live_for(world: World) -> list[str]:
    return [
        b.booking_id
        for b in world.field.bookings.values()
        if b.ticket_id == world.ticket_id and b.status in LIVE_BOOKING_STATUSES
    ]


def test_a_visit_after_the_deadline_is_moved_to_an_earlier_one_in_one_write() -> None:
    # Given a scheduled ticket whose visit (Tuesday 14:00) ends after its deadline (Tue 13:00)
    world = scheduled_with(visit_ticket("P3"), "E-far", 31)
    # When escalation sends it back and the Dispatcher runs
    outcome = redispatched(world)
    # Then the visit moved to Monday's first feasible window: the old one is cancelled in the
    # same write, so the ticket has exactly one live visit
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.end <= world.ticket.sla_resolution_due
    assert outcome.booking.rescheduled_from == "B-late"
    assert world.field.bookings["B-late"].status is BookingStatus.CANCELLED
    assert live_for(world) == [outcome.booking.booking_id]
    assert world.ticket.dispatch_state == DispatchState.BOOKED
    assert world.tickets.timeline[-1].kind == "dispatch_booked"


def test_a_visit_whose_window_passed_with_nobody_on_the_way_is_replaced() -> None:
    # Given the partner's window ended at 07:00 Monday and the booking is still `scheduled`
    world = scheduled_with(visit_ticket("P3"), "E-far", -1.5)
    outcome = redispatched(world)
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.start >= MONDAY
    assert live_for(world) == [outcome.booking.booking_id]


def test_the_earlier_visit_never_overlaps_another_booking_of_the_engineer() -> None:
    # Given the near engineer is busy all Monday with another ticket
    world = scheduled_with(visit_ticket("P3"), "E-far", 31)
    busy = booking("E-near", MONDAY.replace(hour=8), minutes=9 * 60)
    world.field.bookings[busy.booking_id] = busy
    outcome = redispatched(world)
    assert outcome is not None and outcome.booking is not None
    moved = outcome.booking
    assert not (moved.engineer_id == "E-near" and moved.start < busy.end and busy.start < moved.end)
    assert world.field.bookings[busy.booking_id].status is BookingStatus.SCHEDULED


def test_a_visit_that_keeps_the_sla_stays_and_the_ticket_is_booked_again() -> None:
    # Given a visit on Monday at 10:00 (inside the SLA)
    world = scheduled_with(visit_ticket("P3"), "E-far", 3)
    outcome = redispatched(world)
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.booking_id == "B-late" and live_for(world) == ["B-late"]
    assert world.ticket.dispatch_state == DispatchState.BOOKED
    assert world.tickets.timeline[-1].kind == "dispatch_kept"


def test_a_visit_misses_only_while_nobody_started_it() -> None:
    ticket = visit_ticket("P3")
    late = booking("E-far", MONDAY + timedelta(hours=31), ticket_id=ticket.ticket_id)
    assert visit_misses(late, ticket, MONDAY)
    started = late.model_copy(update={"status": BookingStatus.EN_ROUTE})
    assert not visit_misses(started, ticket, MONDAY)

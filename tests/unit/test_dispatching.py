"""Dispatching one ticket: P1/VIP tickets get the earliest feasible visit booked through the
calendar (the next candidate when the slot was taken), the rest wait for the customer's choice;
the decision lands on the ticket once, with the cost estimate."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from aftercare.domain.channels import ChannelPolicy, load_channel_policy
from aftercare.domain.dispatch import FirstTimeFix
from aftercare.domain.dispatch_policy import DispatchPolicy, load_dispatch_policy
from aftercare.domain.dispatching import DispatchDeps, DispatchOutcome, dispatch_ticket
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.pricing import load_price_table
from aftercare.domain.rules import load_catalog
from aftercare.domain.tickets import Ticket
from aftercare.models.field import BookingSource, GeoPoint, Skill
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.tickets import CustomerTier, Priority, TicketFlag, TicketStatus
from aftercare.models.visits import VisitOutcome

from tests.fakes.diagnostics import make_ticket
from tests.fakes.dispatch import (
    MONDAY,
    FakeCustomerPreferences,
    FakeDispatchMarks,
    FakeFieldService,
    FakeFixHistory,
    FakeLeadTimes,
    booking,
    engineer,
)

NEAR = GeoPoint(lat=53.36, lon=-6.25)
FAR = GeoPoint(lat=53.6, lon=-6.6)


def policy_with(**score: float) -> DispatchPolicy:
    policy = load_dispatch_policy()
    return policy.model_copy(update={"score": policy.score.model_copy(update=score)})


def visit_ticket(priority: str = "P1", **update: object) -> Ticket:
    """An AC-HP fan fault flagged for a visit, due 30 hours after Monday 07:00."""
    base = make_ticket("FAN-STALL", model="AC-HP", flags=[TicketFlag.NEEDS_ONSITE_DISPATCH])
    fields = {
        "priority": Priority(priority),
        "sla_resolution_due": MONDAY + timedelta(hours=30),
        **update,
    }
    return base.model_copy(update=fields)


class World:
    def __init__(self, ticket: Ticket, lead_days: dict[str, int] | None = None) -> None:
        self.field = FakeFieldService([engineer("E-near", home=NEAR), engineer("E-far", home=FAR)])
        self.tickets = FakeDispatchMarks(ticket)
        self.field.ticket_moves = self.tickets
        self.history = FakeFixHistory()
        self.customers = FakeCustomerPreferences()
        self.deps = DispatchDeps(
            tickets=self.tickets,
            directory=self.field,
            bookings=self.field,
            calendar=self.field,
            marks=self.tickets,
            lead_times=FakeLeadTimes(lead_days),
            history=self.history,
            customers=self.customers,
            policy=load_dispatch_policy(),
            catalog=load_catalog(),
            prices=load_price_table(),
            channels=load_channel_policy(),
        )
        self.ticket_id = ticket.ticket_id

    def dispatch(self, ticket: Ticket | None = None) -> DispatchOutcome | None:
        current = ticket or self.tickets.tickets[self.ticket_id]
        return dispatch_ticket(current, self.deps, now=MONDAY)

    @property
    def ticket(self) -> Ticket:
        return self.tickets.tickets[self.ticket_id]


@pytest.fixture
def p1() -> World:
    return World(visit_ticket())


def test_a_p1_ticket_gets_the_best_candidates_earliest_visit_booked(p1: World) -> None:
    # When the Dispatcher sees the flagged P1 ticket
    outcome = p1.dispatch()
    # Then the nearer engineer's first window is booked automatically
    assert outcome is not None and outcome.state is DispatchState.BOOKED
    booked = outcome.booking
    assert booked is not None and booked.engineer_id == "E-near"
    assert booked.source is BookingSource.AUTO
    assert booked.start == MONDAY.replace(hour=8, minute=30)  # 08:00 shift + travel, on the grid
    assert list(p1.field.bookings) == [booked.booking_id]
    # And the ticket is scheduled, with the booking and the cost estimate on its timeline
    assert p1.ticket.status is TicketStatus.SCHEDULED
    assert p1.ticket.dispatch_state == DispatchState.BOOKED
    entry = p1.tickets.timeline[-1]
    assert entry.kind == "dispatch_booked" and entry.detail["booking_id"] == booked.booking_id
    assert entry.detail["estimate"]["on_site"] is True


def test_the_automatic_booking_and_the_tickets_move_are_one_write(p1: World) -> None:
    # Given the ticket changes (another writer) after the Dispatcher read it
    stale = p1.ticket
    p1.tickets.tickets[stale.ticket_id] = stale.model_copy(update={"version": stale.version + 1})
    # When the Dispatcher books with the ticket it read
    outcome = p1.dispatch(stale)
    # Then the write carrying the stale ticket was refused whole, the ticket re-read, and
    # the visit booked once with the ticket moved in that same write (no separate mark)
    assert outcome is not None and outcome.state is DispatchState.BOOKED
    assert outcome.booking is not None and list(p1.field.bookings) == [outcome.booking.booking_id]
    (move,) = p1.tickets.marks
    assert move.ticket.version == stale.version + 1
    assert move.to_status is TicketStatus.SCHEDULED and move.entry.kind == "dispatch_booked"
    assert p1.ticket.status is TicketStatus.SCHEDULED


def test_a_ticket_whose_customer_cancelled_is_not_booked_for_them(p1: World) -> None:
    # Given a P1 ticket re-opened by the customer's cancellation (waiting for their choice)
    cancelled = p1.ticket.model_copy(update={"dispatch_state": "awaiting_customer"})
    # When the Dispatcher sees the change (scheduled -> open, flagged)
    # Then it books nothing: the customer picks from the offered slots
    assert p1.dispatch(cancelled) is None and p1.field.bookings == {}


def test_first_time_fix_history_is_read_per_eligible_engineer_and_feeds_the_score(
    p1: World,
) -> None:
    # Given the nearer engineer never fixed this model/code first time and the farther always
    p1.history.outcomes = {
        "E-near": [VisitOutcome.CANNOT_COMPLETE] * 20 + [VisitOutcome.REPEATED] * 10,
        "E-far": [VisitOutcome.VERIFIED] * 20 + [VisitOutcome.UNVERIFIED] * 10,
    }
    p1.deps = replace(p1.deps, policy=policy_with(first_time_fix=100))
    # When the Dispatcher runs
    outcome = p1.dispatch()
    # Then each engineer's record was read once, on the ticket's model and code
    assert sorted(p1.history.reads) == [
        ("E-far", "AC-HP", "FAN-STALL"),
        ("E-near", "AC-HP", "FAN-STALL"),
    ]
    # And the engineer who fixes it first time gets the visit despite the longer drive
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-far"


def vip_world(preferred: list[str]) -> World:
    world = World(visit_ticket("P3", customer_tier=CustomerTier.VIP))
    world.customers.preferred = {world.ticket.customer_id: preferred}
    return world


def test_a_vips_preferred_engineer_gets_the_visit_over_a_nearer_one() -> None:
    # Given a VIP (booked automatically) who prefers the farther engineer
    world = vip_world(["E-far"])
    # When the Dispatcher runs
    outcome = world.dispatch()
    # Then the customer record was read once, and the preference outweighed the drive
    assert world.customers.reads == [world.ticket.customer_id]
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-far"


def test_the_preference_is_a_tunable_weight() -> None:
    # Given the same VIP, with the bonus tuned away in the policy data
    world = vip_world(["E-far"])
    world.deps = replace(world.deps, policy=policy_with(vip_preferred=0))
    # Then the nearer engineer wins as for anyone else
    outcome = world.dispatch()
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-near"


def test_hard_rules_win_over_a_vips_preference() -> None:
    # Given a VIP who prefers an engineer lacking the skill for the model
    world = vip_world(["E-far"])
    world.field.engineers["E-far"] = engineer(
        "E-far", home=FAR, skills=[Skill(model="RT-X", category="*", level=2)]
    )
    # When the Dispatcher runs
    outcome = world.dispatch()
    # Then the preferred engineer is rejected by the rule, and someone able goes
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-near"
    assert "E-far" in outcome.rejected


def test_a_standard_customers_record_is_not_read(p1: World) -> None:
    p1.dispatch()
    assert p1.customers.reads == []


def channels_with(tier: str, prefer: bool) -> ChannelPolicy:
    """The shipped channel policy with one tier's `named_engineer_preference` set."""
    shipped = load_channel_policy()
    treatment = shipped.treatment(tier).model_copy(update={"named_engineer_preference": prefer})
    return shipped.model_copy(update={"tiers": {**shipped.tiers, tier: treatment}})


def test_the_vip_tiers_treatment_in_channels_yaml_is_what_turns_the_preference_on() -> None:
    # Given the shipped channel policy: VIP's treatment prefers named engineers
    assert load_channel_policy().treatment("vip").named_engineer_preference
    # And a VIP who prefers the farther engineer, with that treatment switched off in the data
    world = vip_world(["E-far"])
    world.deps = replace(world.deps, channels=channels_with("vip", prefer=False))
    # When the Dispatcher runs
    outcome = world.dispatch()
    # Then the customer record is not read and the nearer engineer goes, as for anyone
    assert world.customers.reads == []
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-near"


def test_a_tier_whose_treatment_prefers_named_engineers_gets_them_whatever_its_name() -> None:
    # Given a standard (P1, booked automatically) customer preferring the farther engineer,
    # and the standard tier's treatment switched on in the data
    world = World(visit_ticket())
    world.customers.preferred = {world.ticket.customer_id: ["E-far"]}
    world.deps = replace(world.deps, channels=channels_with("standard", prefer=True))
    # When the Dispatcher runs
    outcome = world.dispatch()
    # Then the record was read and the preference won, with no code naming a tier
    assert world.customers.reads == [world.ticket.customer_id]
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-far"


def test_visits_not_finished_yet_say_nothing_about_first_time_fix() -> None:
    record = FirstTimeFix.of(
        [
            VisitOutcome.IN_PROGRESS,
            VisitOutcome.COMPLETED,
            VisitOutcome.VERIFIED,
            VisitOutcome.UNVERIFIED,
            VisitOutcome.FAILED,
            VisitOutcome.REPEATED,
        ]
    )
    assert record == FirstTimeFix(visits=4, fixed=2)


def test_a_taken_slot_moves_on_to_the_next_candidate(p1: World) -> None:
    # Given someone else takes the best candidate's time just before the Dispatcher writes
    p1.field.refuse_next.add("E-near")
    # When it dispatches
    outcome = p1.dispatch()
    # Then the next candidate is booked and the lost race is counted
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.engineer_id == "E-far"
    assert outcome.slot_taken == 1


def test_every_slot_taken_leaves_the_choice_to_the_customer(p1: World) -> None:
    p1.field.refuse_next.update({"E-near", "E-far"})
    outcome = p1.dispatch()
    assert outcome is not None and outcome.state is DispatchState.AWAITING_CUSTOMER
    assert outcome.slot_taken == 2 and p1.field.bookings == {}


def test_a_standard_p3_ticket_waits_for_the_customer_to_choose() -> None:
    world = World(visit_ticket("P3"))
    outcome = world.dispatch()
    assert outcome is not None and outcome.state is DispatchState.AWAITING_CUSTOMER
    assert world.field.bookings == {}
    assert world.ticket.dispatch_state == DispatchState.AWAITING_CUSTOMER
    assert world.ticket.status is TicketStatus.OPEN
    assert world.tickets.timeline[-1].detail["earliest"][0]["engineer_id"] == "E-near"


def test_a_redelivered_record_books_nothing_twice(p1: World) -> None:
    first = p1.dispatch()
    # When the same stream record comes again (the original image)
    again = p1.dispatch(p1.ticket.model_copy(update={"status": TicketStatus.OPEN}))
    assert first is not None and again is not None
    assert again.booking == first.booking
    assert len(p1.field.bookings) == 1 and len(p1.tickets.marks) == 1


def test_a_ticket_that_needs_no_visit_is_left_alone() -> None:
    world = World(make_ticket("WIFI-DROP"))
    assert world.dispatch() is None
    assert world.tickets.marks == []


def backordered_fan() -> PartsLine:
    return PartsLine(
        reservation_id="R-1",
        sku="FAN-80MM",
        name_en="fan",
        name_zh="fan",
        qty=1,
        warehouse=None,
        unit_price=12.5,
        currency="EUR",
        status=LineStatus.BACKORDERED,
        reserved_at=MONDAY,
    )


def test_a_backorder_past_the_deadline_waits_for_parts() -> None:
    # Given the part is expected in 20 days
    line = backordered_fan()
    world = World(
        visit_ticket(parts=[line]),
        lead_days={"FAN-80MM": 20},
    )
    # When it is dispatched
    outcome = world.dispatch()
    # Then no visit is booked before the part can be there, and the wait is recorded
    assert outcome is not None and outcome.state is DispatchState.AWAITING_PARTS
    assert world.field.bookings == {}
    assert world.tickets.marks[-1].waiting_skus == ("FAN-80MM",)


def test_once_the_backorder_arrived_the_visit_is_booked_at_once() -> None:
    # Given the part the ticket waited for was delivered this morning
    line = backordered_fan()
    world = World(
        visit_ticket(parts=[line], parts_arrived_at=MONDAY, dispatch_state="wanted"),
        lead_days={"FAN-80MM": 20},
    )
    # When it is dispatched again
    outcome = world.dispatch()
    # Then the visit is booked on Monday
    assert outcome is not None and outcome.booking is not None
    assert outcome.booking.start.date() == MONDAY.date()


def test_existing_bookings_are_respected(p1: World) -> None:
    # Given the near engineer is booked all Monday
    busy = booking("E-near", MONDAY.replace(hour=8), minutes=9 * 60)
    p1.field.bookings[busy.booking_id] = busy
    outcome = p1.dispatch()
    assert outcome is not None and outcome.booking is not None
    b = outcome.booking
    assert not (b.engineer_id == "E-near" and b.start < busy.end and busy.start < b.end)

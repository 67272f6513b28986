"""The dispatch desk (API and CLI): an engineer says a ticket needs a visit, a manager assigns
or reassigns one by hand, and anyone on staff reads the day's board.

A manual assignment is the same conditional calendar write as an automatic one (`SlotTaken`
when the interval overlaps a live booking or an unexpired hold): no bypass. It also passes the
static hard rules (skill, region, partner contract) and must lie in the engineer's working time.
"""

from __future__ import annotations

from datetime import date, datetime

from aftercare.domain.access import Caller, Forbidden, Group
from aftercare.domain.dispatch import (
    EngineerContext,
    local_day,
    static_rule_failure,
)
from aftercare.domain.dispatch_time import working_intervals
from aftercare.domain.dispatching import (
    Candidate,
    DispatchDeps,
    EngineerNotEligible,
    EngineerUnknown,
    InvalidStart,
    NotDispatchable,
    booked_entry,
    job_of,
    live_booking,
    mark,
    new_booking,
)
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.visit_moves import booked_move
from aftercare.models.field import Booking, BookingSource
from aftercare.models.tickets import DISPATCHABLE_STATES, TicketStatus, TimelineEntry

ASSIGNABLE_STATES = DISPATCHABLE_STATES | {TicketStatus.SCHEDULED}


def request_visit(
    caller: Caller, ticket_id: str, reason: str, deps: DispatchDeps, *, now: datetime
) -> DispatchState:
    """An engineer says the ticket needs a visit: flag it and ask the Dispatcher to run."""
    if Group.ENGINEERS not in caller.groups:
        raise Forbidden("only engineers may ask for a visit")
    ticket = deps.tickets.get_ticket(ticket_id).ticket
    if ticket.status not in DISPATCHABLE_STATES:
        raise NotDispatchable(f"{ticket_id} is {ticket.status}: no visit can be dispatched")
    entry = TimelineEntry(
        at=now, kind="dispatch_requested", actor=caller.actor, detail={"reason": reason}
    )
    mark(deps, ticket, DispatchState.WANTED, entry, flag=True)
    return DispatchState.WANTED


def assign(
    caller: Caller,
    ticket_id: str,
    engineer_id: str,
    start: datetime,
    deps: DispatchDeps,
    *,
    now: datetime,
) -> Booking:
    """A manager puts the ticket's visit on an engineer's calendar at `start` (moving the
    ticket's live booking there if it has one)."""
    if Group.MANAGERS not in caller.groups:
        raise Forbidden("only managers assign visits")
    if start.minute % 15 or start.second or start.microsecond:
        raise InvalidStart("visits start on the quarter hour (the calendar's cells)")
    ticket = deps.tickets.get_ticket(ticket_id).ticket
    if ticket.status not in ASSIGNABLE_STATES:
        raise NotDispatchable(f"{ticket_id} is {ticket.status}: no visit can be assigned")
    engineer = deps.directory.get_engineer(engineer_id)
    if engineer is None:
        raise EngineerUnknown(f"no engineer {engineer_id}")
    partners = {p.partner_id: p for p in deps.directory.list_partners()}
    ctx = EngineerContext(
        engineer=engineer, partner=partners.get(engineer.partner) if engineer.partner else None
    )
    job = job_of(ticket, deps, now)
    failure = static_rule_failure(ctx, job, deps.policy)
    if failure is not None:
        raise EngineerNotEligible(f"{engineer_id} may not take {ticket_id}: {failure}")
    end = start + deps.policy.visit.duration(job.category)
    day = local_day(start, engineer.time_zone)
    if not any(w.start <= start and end <= w.end for w in working_intervals(engineer, day, day)):
        raise EngineerNotEligible(f"{engineer_id} does not work {start.isoformat()} for this visit")
    candidate = Candidate(
        engineer_id=engineer_id,
        partner=engineer.partner,
        start=start,
        end=end,
        time_zone=engineer.time_zone,
        travel_km=0,
        score=0,
    )
    booking = new_booking(
        ticket, candidate, source=BookingSource.DISPATCHER, actor=caller.actor, now=now
    )
    # The booking (or the move of the live one) and the ticket's `scheduled` + `dispatch_booked`
    # are one transaction conditioned on the ticket as read: ConcurrentUpdate (409) otherwise.
    entry = booked_entry(ticket, booking, deps, actor=caller.actor, now=now)
    move = booked_move(ticket, booking, actor=caller.actor, now=now, entry=entry)
    existing = live_booking(deps, ticket_id)
    if existing is None:
        deps.calendar.book(booking, now, ticket_move=move)
    else:
        moved = booking.model_copy(update={"rescheduled_from": existing.booking_id})
        deps.calendar.reschedule(existing, moved, now, ticket_move=move)
    return booking


def board(caller: Caller, day: date, region: str | None, deps: DispatchDeps) -> list[Booking]:
    """The day's bookings (engineers' local dates), optionally one region's, by start."""
    if not caller.staff:
        raise Forbidden("the dispatch board is for engineers and managers")
    return sorted(deps.bookings.board(day, region), key=lambda b: (b.start, b.engineer_id))

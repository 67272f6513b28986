"""The Dispatcher's entry: a ticket that needs a visit gets one (`dispatching`), and a
scheduled ticket that SLA escalation sent back to dispatch (`dispatch_state` = wanted, set by
`redispatch_with_partners`) is looked at again.

A scheduled ticket's live visit that misses the SLA (it ends after the resolution deadline, or
its window passed with nobody on the way, e.g. a partner that did not come) is moved to an
earlier feasible visit by the calendar's reschedule: the old window freed and the new one taken
in one conditional write, which fails with `SlotTaken` when the new time overlaps any live
booking or unexpired hold of that engineer (no double booking; the next candidate is tried).
Otherwise the visit stays and the ticket is `booked` again (`dispatch_kept` on the timeline).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftercare.domain.dispatch import find_candidates
from aftercare.domain.dispatching import (
    Candidate,
    DispatchDeps,
    DispatchOutcome,
    booked_entry,
    contexts_for,
    dispatch_ticket,
    job_of,
    live_booking,
    mark,
    new_booking,
)
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.ports.field import SlotTaken
from aftercare.domain.tickets import Ticket
from aftercare.domain.visit_moves import booked_move
from aftercare.models.field import Booking, BookingSource, BookingStatus
from aftercare.models.tickets import TicketStatus, TimelineEntry


def dispatch(ticket: Ticket, deps: DispatchDeps, *, now: datetime) -> DispatchOutcome | None:
    """One ticket from the Dispatcher's stream; None when it needs no visit (or no longer)."""
    if ticket.status is TicketStatus.SCHEDULED and ticket.dispatch_state == DispatchState.WANTED:
        return redispatch_scheduled(ticket, deps, now)
    return dispatch_ticket(ticket, deps, now=now)


def visit_misses(booking: Booking, ticket: Ticket, now: datetime) -> bool:
    """A visit nobody has started that will not keep the ticket's SLA: it ends after the
    resolution deadline, or its window is over with nobody on the way."""
    if booking.status is not BookingStatus.SCHEDULED:
        return False
    return booking.end > ticket.sla_resolution_due or booking.end <= now


def redispatch_scheduled(ticket: Ticket, deps: DispatchDeps, now: datetime) -> DispatchOutcome:
    """A scheduled ticket sent back to dispatch (SLA escalation): an earlier feasible visit
    replaces one that misses the SLA; otherwise the visit stays and the state is `booked`."""
    existing = live_booking(deps, ticket.ticket_id)
    taken = 0
    if existing is not None and visit_misses(existing, ticket, now):
        job = job_of(ticket, deps, now)
        search = find_candidates(job, contexts_for(job, deps, now), deps.policy, now)
        earlier = [c for c in search.candidates if existing.end <= now or c.end < existing.end]
        for candidate in earlier:
            moved = _moved_visit(ticket, existing, candidate, deps, now)
            if moved is not None:
                return DispatchOutcome(
                    ticket_id=ticket.ticket_id,
                    state=DispatchState.BOOKED,
                    booking=moved,
                    candidates=len(search.candidates),
                    rejected=search.rejected,
                    slot_taken=taken,
                )
            taken += 1
    detail: dict[str, Any] = {
        "booking_id": existing.booking_id if existing else None,
        "reason": "no earlier feasible visit" if existing else "no live visit",
        "slot_taken": taken,
    }
    entry = TimelineEntry(at=now, kind="dispatch_kept", actor="dispatcher", detail=detail)
    mark(deps, ticket, DispatchState.BOOKED, entry)
    return DispatchOutcome(
        ticket_id=ticket.ticket_id, state=DispatchState.BOOKED, booking=existing, slot_taken=taken
    )


def _moved_visit(
    ticket: Ticket, existing: Booking, candidate: Candidate, deps: DispatchDeps, now: datetime
) -> Booking | None:
    """The live visit moved to `candidate` in one reschedule write; None when that time was
    taken meanwhile (`ConcurrentUpdate` when the ticket moved on: the record is retried)."""
    booking = new_booking(
        ticket, candidate, source=BookingSource.AUTO, actor="dispatcher", now=now
    ).model_copy(
        update={"rescheduled_from": existing.booking_id, "reason": "SLA escalation: earlier visit"}
    )
    entry = booked_entry(ticket, booking, deps, actor="dispatcher", now=now)
    move = booked_move(ticket, booking, actor="dispatcher", now=now, entry=entry)
    try:
        deps.calendar.reschedule(existing, booking, now, ticket_move=move)
    except SlotTaken:
        return None
    return booking

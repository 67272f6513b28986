"""The ticket's side of a visit's booking, rescheduling or cancelling: the version-guarded
dispatch mark the calendar's transaction carries (status, dispatch state, timeline entries),
and whether a visit keeps the ticket's resolution SLA."""

from __future__ import annotations

from datetime import UTC, datetime

from aftercare.domain.lifecycle import SCHEDULABLE_FROM
from aftercare.domain.ports.dispatch import DispatchMark, DispatchState
from aftercare.domain.tickets import Ticket, plan_status_change
from aftercare.models.field import Booking
from aftercare.models.tickets import TicketStatus, TimelineEntry


def within_sla(ticket: Ticket, end: datetime) -> bool:
    """A visit ending by the ticket's resolution deadline keeps the SLA (the engineer's travel
    comes before the window, so the window's end is what the deadline bounds)."""
    return end <= ticket.sla_resolution_due


def booked_move(
    ticket: Ticket,
    booking: Booking,
    *,
    actor: str,
    now: datetime,
    entry: TimelineEntry | None = None,
) -> DispatchMark:
    """The ticket's side of booking its visit, written in the booking's transaction: dispatch
    state `booked` and, from open/diagnosing/awaiting parts, status `scheduled` (a ticket
    already scheduled or under repair keeps its status). `entry`: the timeline entry to write
    (default: the status change naming the booking)."""
    moves = ticket.status in SCHEDULABLE_FROM
    if entry is None and moves:
        reason = f"visit {booking.booking_id} booked"
        entry = plan_status_change(
            ticket, TicketStatus.SCHEDULED, actor=actor, reason=reason, now=now
        ).entry
    if entry is None:
        detail = {"booking_id": booking.booking_id, "status": ticket.status.value}
        entry = TimelineEntry(at=now, kind="dispatch_booked", actor=actor, detail=detail)
    return DispatchMark(
        ticket=ticket,
        state=DispatchState.BOOKED,
        entry=entry,
        to_status=TicketStatus.SCHEDULED if moves else None,
        notes=outside_sla_notes(ticket, booking, actor=actor, now=now),
    )


def outside_sla_notes(
    ticket: Ticket, booking: Booking, *, actor: str, now: datetime
) -> tuple[TimelineEntry, ...]:
    """`booked_outside_sla` when the visit ends after the resolution deadline, so KPIs and
    escalation see that the booking itself misses the SLA."""
    if within_sla(ticket, booking.end):
        return ()
    detail = {
        "booking_id": booking.booking_id,
        "visit_end": booking.end.astimezone(UTC).isoformat(),
        "sla_resolution_due": ticket.sla_resolution_due.astimezone(UTC).isoformat(),
    }
    return (TimelineEntry(at=now, kind="booked_outside_sla", actor=actor, detail=detail),)


REOPENED_FROM = frozenset({TicketStatus.SCHEDULED, TicketStatus.IN_REPAIR})


def reopened_move(
    ticket: Ticket,
    booking: Booking,
    state: DispatchState,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> DispatchMark | None:
    """The ticket's side of cancelling its visit: back to `open` (from scheduled), flagged for
    dispatch, in `state`; None for a ticket no longer active (nothing to re-open)."""
    if not ticket.active:
        return None
    why = f"visit {booking.booking_id} cancelled: {reason}"
    if ticket.status in REOPENED_FROM:
        entry = plan_status_change(
            ticket, TicketStatus.OPEN, actor=actor, reason=why, now=now
        ).entry
        return DispatchMark(
            ticket=ticket, state=state, entry=entry, to_status=TicketStatus.OPEN, flag=True
        )
    detail = {"booking_id": booking.booking_id, "reason": why}
    entry = TimelineEntry(at=now, kind=f"dispatch_{state.value}", actor=actor, detail=detail)
    return DispatchMark(ticket=ticket, state=state, entry=entry, flag=True)

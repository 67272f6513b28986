"""An engineer's visit: today's jobs, and the status changes an engineer reports on a booking.

A booking moves by `BOOKING_TRANSITIONS` (scheduled -> en_route -> on_site -> completed |
cannot_complete), each change checked against the version the engineer read (`StaleBooking`,
409) and written by the calendar (which frees the engineer's time when the booking stops being
live). Each change then lands on the ticket in one version-guarded transaction, with its
timeline entry and the visit record (`TICKET#<id> / VISIT#<booking>`, what first-time-fix KPIs
read):

- `en_route`: a timeline entry (the notifier tells the customer the engineer is on the way);
- `on_site`: the ticket goes `in_repair` (through `scheduled` when it was not yet);
- `completed`: the held parts the engineer used are consumed, the others released; the ticket
  stays `in_repair` until the device verifies the fix: a verification self-test is sent through
  the diagnostics round trip (`Purpose.VISIT_VERIFY`; its answer resolves the ticket on site,
  see `diagnostics_plans`);
- `cannot_complete`: the ticket goes back to `open`, flagged `needs_onsite_dispatch` with the
  reason (dispatch picks it up again); the visit counts against first-time fix.

Nothing is lost between the two writes: an engineer (or the CLI) retrying the same change with
the same `expected_version` after the booking moved finds the booking already there (version
one higher) and the ticket side is applied again, once (a visit record already at that status
means it was).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_records import PublishFailed, derived_request_id
from aftercare.domain.parts import LineChange, change_line
from aftercare.domain.ports import (
    BookingReads,
    Calendar,
    CommandPublisher,
    ConcurrentUpdate,
    DiagnosticsStore,
    PartsChange,
    TicketNotFound,
    VisitTickets,
)
from aftercare.domain.tickets import TRANSITIONS, Ticket, plan_status_change
from aftercare.models.diagnostics import DiagnosticRecord, Purpose, Routine
from aftercare.models.field import (
    BOOKING_TRANSITIONS,
    Booking,
    BookingStatus,
    VerificationOutcome,
)
from aftercare.models.parts import LineStatus
from aftercare.models.tickets import TicketFlag, TicketStatus, TimelineEntry
from aftercare.models.visits import JobView, SetJobStatus, VisitOutcome, VisitRecord

MAX_ATTEMPTS = 3
VERIFY_ACTOR = "visit-verification"
BEFORE_VISIT = frozenset({TicketStatus.OPEN, TicketStatus.DIAGNOSING, TicketStatus.AWAITING_PARTS})


class StaleBooking(Exception):
    """The booking's version is not the one the engineer read."""

    def __init__(self, booking: Booking, expected: int) -> None:
        super().__init__(
            f"booking {booking.booking_id} is at version {booking.version} ({booking.status}),"
            f" not {expected}: read it again"
        )
        self.booking = booking


class InvalidBookingTransition(ValueError):
    def __init__(self, current: BookingStatus, target: BookingStatus) -> None:
        allowed = ", ".join(sorted(BOOKING_TRANSITIONS[current])) or "none (finished)"
        super().__init__(f"cannot move a booking from {current} to {target}; allowed: {allowed}")


def check_booking_transition(current: BookingStatus, target: BookingStatus) -> None:
    if target not in BOOKING_TRANSITIONS[current]:
        raise InvalidBookingTransition(current, target)


@dataclass(frozen=True)
class VisitDeps:
    bookings: BookingReads
    calendar: Calendar
    tickets: VisitTickets
    diagnostics: DiagnosticsStore
    publisher: CommandPublisher
    verify_timeout: timedelta


class JobResult(BaseModel):
    """What `POST /bookings/{id}/status` answers: the booking now, its ticket's status, and the
    verification request a completion started."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    booking: Booking
    ticket_status: TicketStatus | None = None
    verification_request: str | None = None
    verification_published: bool | None = None


# --------------------------------------------------------------------------- reads


def jobs_today(
    deps: VisitDeps, caller: Caller, day: date, engineer_id: str | None = None
) -> list[JobView]:
    """The calling engineer's jobs on `day`, ordered by start (a manager may name an engineer)."""
    if engineer_id is not None and caller.manager:
        who = engineer_id
    else:
        who = caller.require_field_engineer()
    bookings = sorted(deps.bookings.bookings_for_engineer(who, day), key=lambda b: b.start)
    tickets = deps.tickets.tickets_by_id([b.ticket_id for b in bookings])
    return [_job(b, tickets.get(b.ticket_id)) for b in bookings]


def _job(booking: Booking, ticket: Ticket | None) -> JobView:
    if ticket is None:
        return JobView.of(booking)
    return JobView.of(
        booking,
        fault_code=ticket.fault_code,
        title_en=ticket.title_en,
        priority=ticket.priority.value,
        model=ticket.model,
        ticket_status=ticket.status.value,
    )


# --------------------------------------------------------------------------- status changes


def set_job_status(
    deps: VisitDeps, caller: Caller, booking_id: str, body: SetJobStatus, now: datetime
) -> JobResult:
    """Move a booking as the engineer reports, land it on the ticket, start verification.

    Raises BookingNotFound, Forbidden (not the booking's engineer nor a manager), StaleBooking,
    InvalidBookingTransition, BookingConflict (the calendar saw it move meanwhile)."""
    booking = deps.bookings.get_booking(booking_id)
    _authorize(caller, booking)
    target = body.status.booking_status
    if booking.status is target and booking.version == body.expected_version + 1:
        updated = booking  # a retry of a change that reached the calendar: finish the ticket side
    else:
        if booking.version != body.expected_version:
            raise StaleBooking(booking, body.expected_version)
        check_booking_transition(booking.status, target)
        updated = deps.calendar.set_status(
            booking,
            target,
            body.expected_version,
            actor=caller.actor,
            now=now,
            **_booking_changes(body),
        )
    ticket = land_on_ticket(deps.tickets, updated, body, actor=caller.actor, now=now)
    result = JobResult(booking=updated, ticket_status=ticket.status if ticket else None)
    if target is BookingStatus.COMPLETED and ticket is not None and ticket.active:
        visit = completed_visit(updated, ticket, body, now)
        record, published = start_verification(deps, visit, ticket, now)
        result = result.model_copy(
            update={"verification_request": record.request_id, "verification_published": published}
        )
    return result


def _authorize(caller: Caller, booking: Booking) -> None:
    if caller.manager:
        return
    if caller.require_field_engineer() != booking.engineer_id:
        raise Forbidden(f"booking {booking.booking_id} is not one of your jobs")


def _booking_changes(body: SetJobStatus) -> dict[str, Any]:
    """What the calendar writes on the booking with the status (Booking fields)."""
    changes: dict[str, Any] = {}
    if body.notes is not None:
        changes["notes"] = body.notes
    if body.reason is not None:
        changes["reason"] = body.reason
    if body.status.booking_status is BookingStatus.COMPLETED:
        changes["parts_used"] = list(body.parts_used or [])
        changes["verification"] = VerificationOutcome.PENDING
    return changes


def land_on_ticket(
    tickets: VisitTickets, booking: Booking, body: SetJobStatus, *, actor: str, now: datetime
) -> Ticket | None:
    """Apply the booking's new status to its ticket, once, retrying when the ticket moved."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            detail = tickets.get_ticket(booking.ticket_id)
        except TicketNotFound:
            return None
        if _landed(detail.ticket, detail.visits, booking):
            return detail.ticket  # already there (a retry)
        try:
            _apply(tickets, detail.ticket, booking, body, actor=actor, now=now)
        except ConcurrentUpdate:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            continue
        return tickets.get_ticket(booking.ticket_id).ticket
    raise AssertionError("unreachable")  # pragma: no cover


def _landed(ticket: Ticket, visits: Sequence[VisitRecord], booking: Booking) -> bool:
    return any(v.booking_id == booking.booking_id and v.status is booking.status for v in visits)


def visit_record(
    booking: Booking, ticket: Ticket, outcome: VisitOutcome, now: datetime, **extra: object
) -> VisitRecord:
    return VisitRecord(
        booking_id=booking.booking_id,
        ticket_id=ticket.ticket_id,
        engineer_id=booking.engineer_id,
        partner=booking.partner,
        model=ticket.model,
        fault_code=ticket.fault_code,
        status=booking.status,
        outcome=outcome,
        updated_at=now,
        start=booking.start,
        end=booking.end,
        time_zone=booking.time_zone,
        **extra,
    )


def _apply(
    tickets: VisitTickets,
    ticket: Ticket,
    booking: Booking,
    body: SetJobStatus,
    *,
    actor: str,
    now: datetime,
) -> None:
    """The ticket side of a booking change (the calendar already wrote its `visit_<status>`
    audit entry with the booking): what follows for the ticket, its parts and its KPIs."""
    status = booking.status
    if status is BookingStatus.EN_ROUTE:
        _en_route(tickets, ticket, booking, actor=actor, now=now)
    elif status is BookingStatus.ON_SITE:
        _on_site(tickets, ticket, booking, actor=actor, now=now)
    elif status is BookingStatus.COMPLETED:
        _completed(tickets, ticket, booking, body=body, actor=actor, now=now)
    elif status is BookingStatus.CANNOT_COMPLETE:
        _cannot_complete(tickets, ticket, booking, body=body, actor=actor, now=now)


def _en_route(
    tickets: VisitTickets, ticket: Ticket, booking: Booking, *, actor: str, now: datetime
) -> None:
    """The ticket learns the engineer is on the way (and the notifier tells the customer)."""
    entry = TimelineEntry(
        at=now,
        kind="visit_eta",
        actor=actor,
        detail={
            "booking_id": booking.booking_id,
            "engineer_id": booking.engineer_id,
            "window": [booking.start.isoformat(), booking.end.isoformat()],
        },
    )
    visit = visit_record(booking, ticket, VisitOutcome.IN_PROGRESS, now)
    tickets.apply_parts_change(PartsChange(ticket=ticket, changes=[], entry=entry, visit=visit))


def _on_site(
    tickets: VisitTickets, ticket: Ticket, booking: Booking, *, actor: str, now: datetime
) -> None:
    why = f"engineer {booking.engineer_id} on site (visit {booking.booking_id})"
    if ticket.status in BEFORE_VISIT:
        to_scheduled = plan_status_change(
            ticket, TicketStatus.SCHEDULED, actor=actor, reason=why, now=now
        )
        tickets.apply_status_change(to_scheduled)
        ticket = tickets.get_ticket(ticket.ticket_id).ticket
    change = plan_status_change(ticket, TicketStatus.IN_REPAIR, actor=actor, reason=why, now=now)
    visit = visit_record(booking, ticket, VisitOutcome.IN_PROGRESS, now)
    tickets.apply_status_change(change.model_copy(update={"visit": visit}))


def parts_on_completion(ticket: Ticket, parts_used: Sequence[str] | None) -> list[LineChange]:
    """Held lines the engineer used are consumed, other held lines released; `None` (not
    said) consumes every held line. Backorders stay: a failed fix may still need them."""
    used = None if parts_used is None else set(parts_used)
    changes = []
    for index, line in enumerate(ticket.parts):
        if line.status is not LineStatus.HELD:
            continue
        consumed = used is None or line.sku in used
        changes.append(
            change_line(index, line, LineStatus.CONSUMED if consumed else LineStatus.RELEASED)
        )
    return changes


def _completed(
    tickets: VisitTickets,
    ticket: Ticket,
    booking: Booking,
    *,
    body: SetJobStatus,
    actor: str,
    now: datetime,
) -> None:
    changes = parts_on_completion(ticket, body.parts_used)
    detail: dict[str, object] = {
        "booking_id": booking.booking_id,
        "parts": [{"sku": c.line.sku, "qty": c.line.qty, "to": c.to.value} for c in changes],
    }
    if body.notes:
        detail["notes"] = body.notes
    entry = TimelineEntry(at=now, kind="visit_parts_settled", actor=actor, detail=detail)
    visit = completed_visit(booking, ticket, body, now)
    tickets.apply_parts_change(
        PartsChange(ticket=ticket, changes=changes, entry=entry, visit=visit)
    )


def completed_visit(
    booking: Booking, ticket: Ticket, body: SetJobStatus, now: datetime
) -> VisitRecord:
    return visit_record(
        booking,
        ticket,
        VisitOutcome.COMPLETED,
        now,
        parts_used=list(body.parts_used or []),
        verification=VerificationOutcome.PENDING,
        verification_request=verification_request_id(booking),
    )


def _cannot_complete(
    tickets: VisitTickets,
    ticket: Ticket,
    booking: Booking,
    *,
    body: SetJobStatus,
    actor: str,
    now: datetime,
) -> None:
    reason = f"visit {booking.booking_id} could not complete: {body.reason}"
    visit = visit_record(booking, ticket, VisitOutcome.CANNOT_COMPLETE, now, reason=body.reason)
    flags = [*ticket.flags]
    if TicketFlag.NEEDS_ONSITE_DISPATCH not in flags:
        flags.append(TicketFlag.NEEDS_ONSITE_DISPATCH)
    back = {"visit": visit, "flags": flags, "dispatch_reason": reason}
    if TicketStatus.OPEN in TRANSITIONS[ticket.status]:
        change = plan_status_change(ticket, TicketStatus.OPEN, actor=actor, reason=reason, now=now)
        tickets.apply_status_change(change.model_copy(update=back))
        return
    entry = TimelineEntry(
        at=now,
        kind="flagged",
        actor=actor,
        detail={"flag": TicketFlag.NEEDS_ONSITE_DISPATCH.value, "because": reason},
    )
    if not ticket.active:
        back = {"visit": visit}
    tickets.apply_parts_change(PartsChange(ticket=ticket, changes=[], entry=entry, **back))


# --------------------------------------------------------------------------- verification


def verification_request_id(booking: Booking) -> str:
    """Deterministic: a retried completion finds the verification it already started."""
    return derived_request_id(booking.ticket_id, f"visit|{booking.booking_id}")


def start_verification(
    deps: VisitDeps, visit: VisitRecord, ticket: Ticket, now: datetime
) -> tuple[DiagnosticRecord, bool]:
    """Ask the device whether the fault is gone (a self-test about the ticket's code).

    A publish that fails leaves the request pending: the diagnostics sweeper times it out and
    the ticket resolves on the engineer's word, `unverified`."""
    try:
        record = start_diagnostic(
            deps.diagnostics,
            deps.publisher,
            ticket,
            routine=Routine.SELF_TEST.value,
            params={"code": ticket.fault_code},
            timeout=deps.verify_timeout,
            actor=VERIFY_ACTOR,
            purpose=Purpose.VISIT_VERIFY,
            now=now,
            request_id=visit.verification_request,
            visit=visit,
        )
    except PublishFailed:
        loaded = deps.diagnostics.load(ticket.ticket_id, str(visit.verification_request)).record
        if loaded is None:
            raise
        return loaded, False
    return record, True

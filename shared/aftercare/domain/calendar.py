"""Booked repairs: the slots a customer is offered for a ticket, booking one, rescheduling and
cancelling, for customers (their own tickets) and staff alike.

Availability comes from `availability` (working hours in the engineer's zone, absences, the
calendar's live bookings and unexpired holds). Offering a slot holds it briefly for the ticket
(`hold:<ticket>`), so two customers are never promised the same time; booking is the
calendar's one conditional write, which refuses an overlap with `SlotTaken` (HTTP 409
`slot_taken`) whatever the offer said. The calendar adapter appends every change to the
ticket's timeline in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.availability import (
    InvalidSlot,
    SlotRef,
    fits,
    free_windows,
    parse_slot_id,
    slot_id,
    starts_in,
)
from aftercare.domain.ports import StatusChanges, TicketNotFound
from aftercare.domain.ports.dispatch import DispatchState
from aftercare.domain.ports.field import (
    BookingNotFound,
    BookingReads,
    Calendar,
    CalendarReads,
    EngineerDirectory,
    SlotTaken,
    TicketAlreadyBooked,
)
from aftercare.domain.tickets import Ticket
from aftercare.domain.visit_moves import booked_move, reopened_move, within_sla
from aftercare.models.field import (
    BOOKING_TRANSITIONS,
    LIVE_BOOKING_STATUSES,
    Booking,
    BookingSource,
    BookingStatus,
    Engineer,
    EngineerKind,
    Slot,
)

__all__ = [
    "BookingPolicy",
    "FieldBooking",
    "InvalidBookingChange",
    "InvalidSlot",
    "TicketNotBookable",
    "eligible",
    "hold_of",
    "load_booking_policy",
]


class BookingPolicy(BaseModel):
    """`data/calendar.yaml`: how offers are made."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    version: str
    slot_step_minutes: int = Field(ge=15, multiple_of=15)
    horizon_days: int = Field(ge=1, le=60)
    lead_minutes: int = Field(ge=0)
    hold_minutes: int = Field(ge=1)
    max_offers: int = Field(ge=1, le=50)
    max_per_engineer_day: int = Field(ge=1)
    partners_fill_in: bool = True
    dispatch_after_cancel: Literal["awaiting_customer", "wanted"] = "awaiting_customer"
    offer_after_sla: Literal["fallback", "after", "never"] = "fallback"
    visit_minutes: dict[str, int]
    region_time_zones: dict[str, str]

    def visit_length(self, category: str) -> timedelta:
        minutes = self.visit_minutes.get(category, self.visit_minutes["default"])
        return timedelta(minutes=minutes)

    def zone_of(self, region: str) -> str:
        return self.region_time_zones.get(region, "UTC")


@cache
def load_booking_policy() -> BookingPolicy:
    data = load(DATA_FOLDER, "calendar.yaml")
    return BookingPolicy.model_validate({**data, "version": str(data["version"])})


class TicketNotBookable(Exception):
    """Visits are booked only for active tickets."""

    def __init__(self, ticket_id: str, status: str) -> None:
        super().__init__(f"ticket {ticket_id} is {status}; visits are booked for active tickets")
        self.ticket_id = ticket_id


class InvalidBookingChange(Exception):
    """The booking's status does not allow this change."""


def hold_of(ticket_id: str) -> str:
    """Who holds an offered slot: the ticket it was offered for."""
    return f"hold:{ticket_id}"


def eligible(engineer: Engineer, ticket: Ticket) -> bool:
    """Active, covers the ticket's region, and has a skill for its model and fault category."""
    return (
        engineer.active
        and ticket.region in engineer.regions
        and any(
            s.model in ("*", ticket.model) and s.category in ("*", ticket.category)
            for s in engineer.skills
        )
    )


@dataclass(frozen=True)
class _Candidate:
    start: datetime
    in_house: bool
    engineer: Engineer
    within_sla: bool = True


@dataclass
class FieldBooking:
    """The booking use cases over the calendar ports."""

    tickets: StatusChanges
    directory: EngineerDirectory
    calendar: Calendar
    calendar_reads: CalendarReads
    bookings: BookingReads
    policy: BookingPolicy

    # ---- reads

    def ticket(self, caller: Caller, ticket_id: str) -> Ticket:
        """The ticket if the caller may see it (a customer's own only), else TicketNotFound."""
        caller.require_reader()
        ticket = self.tickets.get_ticket(ticket_id).ticket
        if not caller.may_see(ticket.customer_id):
            raise TicketNotFound(ticket_id)
        return ticket

    def booking(self, caller: Caller, booking_id: str) -> Booking:
        booking = self.bookings.get_booking(booking_id)
        if not caller.staff and not caller.may_see(booking.customer_id):
            raise BookingNotFound(booking_id)
        return booking

    def bookings_of(self, caller: Caller, ticket_id: str) -> list[Booking]:
        self.ticket(caller, ticket_id)
        return self.bookings.bookings_for_ticket(ticket_id)

    # ---- offers

    def offer_slots(self, caller: Caller, ticket_id: str, now: datetime) -> list[Slot]:
        """Up to `max_offers` windows over the next days, earliest first, each held for the
        ticket until `hold_minutes` from now (a slot someone else took meanwhile is skipped)."""
        ticket = self._bookable(caller, ticket_id)
        length = self.policy.visit_length(ticket.category)
        start = now + timedelta(minutes=self.policy.lead_minutes)
        end = now + timedelta(days=self.policy.horizon_days)
        expires = now + timedelta(minutes=self.policy.hold_minutes)
        offers: list[Slot] = []
        per_day: dict[tuple[str, str], list[datetime]] = {}
        for candidate in self._candidates(ticket, start, end, length, now):
            if not candidate.within_sla and not self._late_offered(offers):
                continue
            key = (candidate.engineer.engineer_id, _local_day(candidate))
            picked = per_day.setdefault(key, [])
            if len(picked) >= self.policy.max_per_engineer_day or any(
                abs(candidate.start - other) < length for other in picked
            ):
                continue
            try:
                self.calendar.hold(
                    engineer_id=candidate.engineer.engineer_id,
                    start=candidate.start,
                    end=candidate.start + length,
                    holder=hold_of(ticket.ticket_id),
                    expires_at=expires,
                    now=now,
                )
            except SlotTaken:
                continue
            picked.append(candidate.start)
            offers.append(self._slot(ticket, candidate, length, expires))
            if len(offers) >= self.policy.max_offers:
                break
        return offers

    def _candidates(
        self, ticket: Ticket, start: datetime, end: datetime, length: timedelta, now: datetime
    ) -> list[_Candidate]:
        engineers = [e for e in self.directory.list_engineers(ticket.region) if eligible(e, ticket)]
        step = timedelta(minutes=self.policy.slot_step_minutes)
        found: list[_Candidate] = []
        for in_house in (True, False):
            if not in_house and found and not self._partners_needed(found):
                break
            for engineer in engineers:
                if (engineer.kind is EngineerKind.IN_HOUSE) != in_house:
                    continue
                busy = self.calendar_reads.busy(engineer.engineer_id, start, end, now)
                free = free_windows(engineer, start, end, busy, holder=hold_of(ticket.ticket_id))
                found += [
                    _Candidate(at, in_house, engineer, within_sla(ticket, at + length))
                    for at in starts_in(free, length, step)
                ]
        return sorted(
            found,
            key=lambda c: (not c.within_sla, c.start, not c.in_house, c.engineer.engineer_id),
        )

    def _late_offered(self, offers: list[Slot]) -> bool:
        """Whether a slot past the SLA may join `offers` (the in-SLA ones come first)."""
        match self.policy.offer_after_sla:
            case "after":
                return True
            case "fallback":
                return not any(offer.within_sla for offer in offers)
            case _:
                return False

    def _partners_needed(self, found: list[_Candidate]) -> bool:
        return self.policy.partners_fill_in and len(found) < self.policy.max_offers

    def _slot(
        self, ticket: Ticket, candidate: _Candidate, length: timedelta, expires: datetime
    ) -> Slot:
        zone = ZoneInfo(self.policy.zone_of(ticket.region))
        end = candidate.start + length
        return Slot(
            slot_id=slot_id(candidate.engineer.engineer_id, candidate.start, _minutes(length)),
            engineer_id=candidate.engineer.engineer_id,
            start=candidate.start,
            end=end,
            time_zone=str(zone),
            local_start=candidate.start.astimezone(zone).isoformat(),
            local_end=end.astimezone(zone).isoformat(),
            partner=candidate.engineer.partner,
            hold_expires_at=expires,
            within_sla=candidate.within_sla,
        )

    # ---- writes

    def book(
        self, caller: Caller, ticket_id: str, slot: str, now: datetime
    ) -> tuple[Booking, bool]:
        """Book an offered (or any free, valid) slot: (booking, True), or the ticket's existing
        live booking of that same window (a retry: False). SlotTaken when not free. The ticket
        moves to `scheduled` in the booking's own transaction, conditioned on the status and
        version read: `ConcurrentUpdate` (409) when it changed meanwhile, and no booking then."""
        ticket = self._bookable(caller, ticket_id)
        ref = parse_slot_id(slot)
        booking = self._new_booking(caller, ticket, ref, now)
        created = True
        try:
            self.calendar.book(
                booking,
                now,
                holder=hold_of(ticket.ticket_id),
                ticket_move=booked_move(ticket, booking, actor=caller.actor, now=now),
            )
        except TicketAlreadyBooked as exc:
            existing = self.bookings.get_booking(exc.booking_id)
            if (existing.engineer_id, existing.start, existing.end) != (
                booking.engineer_id,
                booking.start,
                booking.end,
            ):
                raise
            booking, created = existing, False
        return booking, created

    def assign(
        self, caller: Caller, ticket_id: str, engineer_id: str, start: datetime, now: datetime
    ) -> Booking:
        """A dispatcher puts the visit on an engineer's calendar: the same write as a customer's
        booking (no bypass), taking no hold of anyone."""
        if not caller.staff:
            raise Forbidden("only staff assign engineers")
        ticket = self._bookable(caller, ticket_id)
        length = self.policy.visit_length(ticket.category)
        ref = SlotRef(
            engineer_id=engineer_id, start=start.astimezone(UTC), minutes=_minutes(length)
        )
        booking = self._new_booking(caller, ticket, ref, now)
        self.calendar.book(
            booking, now, ticket_move=booked_move(ticket, booking, actor=caller.actor, now=now)
        )
        return booking

    def reschedule(
        self, caller: Caller, booking_id: str, slot: str, reason: str, now: datetime
    ) -> Booking:
        """Move a live booking to another slot: the old window is freed and the new one taken in
        one write (SlotTaken leaves the old booking as it was), with the ticket's side
        conditioned on the status and version read, as booking is: `ConcurrentUpdate` (409)
        when the ticket changed meanwhile, and nothing moves then."""
        old = self.booking(caller, booking_id)
        if old.status is not BookingStatus.SCHEDULED:
            raise InvalidBookingChange(f"a {old.status} booking cannot be rescheduled")
        ticket = self._bookable(caller, old.ticket_id)
        ref = parse_slot_id(slot)
        new = self._new_booking(caller, ticket, ref, now).model_copy(
            update={"rescheduled_from": old.booking_id, "reason": reason}
        )
        move = booked_move(ticket, new, actor=caller.actor, now=now)
        self.calendar.reschedule(old, new, now, holder=hold_of(ticket.ticket_id), ticket_move=move)
        return new

    def cancel(self, caller: Caller, booking_id: str, reason: str, now: datetime) -> Booking:
        """Cancel a live booking with a reason; its time is freed and its ticket re-opened for
        dispatch (`dispatch_after_cancel`: slots offered again) in the same write
        (`ConcurrentUpdate` when the ticket changed meanwhile: nothing is cancelled then)."""
        booking = self.booking(caller, booking_id)
        if BookingStatus.CANCELLED not in BOOKING_TRANSITIONS[booking.status]:
            raise InvalidBookingChange(f"a {booking.status} booking cannot be cancelled")
        if caller.customer and booking.status is not BookingStatus.SCHEDULED:
            raise InvalidBookingChange("the engineer is on the way: call us to cancel")
        ticket = self.tickets.get_ticket(booking.ticket_id).ticket
        move = reopened_move(
            ticket,
            booking,
            DispatchState(self.policy.dispatch_after_cancel),
            actor=caller.actor,
            reason=reason,
            now=now,
        )
        return self.calendar.set_status(
            booking, BookingStatus.CANCELLED, booking.version, actor=caller.actor, now=now,
            ticket_move=move, reason=reason,
        )  # fmt: skip

    # ---- helpers

    def _bookable(self, caller: Caller, ticket_id: str) -> Ticket:
        ticket = self.ticket(caller, ticket_id)
        if not ticket.active:
            raise TicketNotBookable(ticket_id, ticket.status.value)
        return ticket

    def _new_booking(self, caller: Caller, ticket: Ticket, ref: SlotRef, now: datetime) -> Booking:
        engineer = self.directory.get_engineer(ref.engineer_id)
        if engineer is None or not eligible(engineer, ticket):
            raise InvalidSlot(f"{ref.engineer_id} does not take visits for this ticket")
        if ref.start.minute % 15 or ref.start.second or ref.start.microsecond:
            raise InvalidSlot("visits start on the quarter hour")
        if ref.end - ref.start != self.policy.visit_length(ticket.category):
            raise InvalidSlot(f"a {ticket.category} visit is not {ref.minutes} minutes")
        if ref.start < now or not fits(engineer, ref.start, ref.end):
            raise InvalidSlot("that window is not in the engineer's working time")
        return scheduled_visit(
            ticket,
            booking_id=f"B-{uuid.uuid4().hex[:16]}",
            engineer=engineer,
            start=ref.start,
            end=ref.end,
            source=BookingSource.DISPATCHER if caller.staff else BookingSource.CUSTOMER,
            actor=caller.actor,
            now=now,
        )


def scheduled_visit(
    ticket: Ticket,
    *,
    booking_id: str,
    engineer: Engineer | VisitTaker,
    start: datetime,
    end: datetime,
    source: BookingSource,
    actor: str,
    now: datetime,
) -> Booking:
    """The one way a new visit for a ticket is written down (customer, dispatcher or
    Dispatcher): scheduled, on `engineer`'s calendar in their time zone."""
    return Booking(
        booking_id=booking_id,
        ticket_id=ticket.ticket_id,
        engineer_id=engineer.engineer_id,
        partner=engineer.partner,
        customer_id=ticket.customer_id,
        thing=ticket.thing,
        region=ticket.region,
        start=start,
        end=end,
        time_zone=engineer.time_zone,
        status=BookingStatus.SCHEDULED,
        source=source,
        created_at=now,
        updated_at=now,
        created_by=actor,
    )


class VisitTaker(Protocol):
    """Who takes a visit, as far as its booking needs to say: an engineer or a candidate."""

    @property
    def engineer_id(self) -> str: ...

    @property
    def partner(self) -> str | None: ...

    @property
    def time_zone(self) -> str: ...


def live(booking: Booking) -> bool:
    return booking.status in LIVE_BOOKING_STATUSES


def _minutes(length: timedelta) -> int:
    return int(length.total_seconds() // 60)


def _local_day(candidate: _Candidate) -> str:
    return candidate.start.astimezone(ZoneInfo(candidate.engineer.time_zone)).date().isoformat()

"""What field service needs from storage: the engineer directory (read side, managers edit it),
each engineer's calendar (the write side that makes double booking impossible) and the booking
reads of the API, the CLI and the dispatcher.

The calendar's writes are conditional: a hold or booking fails with `SlotTaken` when its
interval overlaps a live booking or an unexpired hold of the same engineer (never a read
followed by a write); an adapter decides how (cells of the engineer's day, one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from aftercare.domain.ports.dispatch import DispatchMark
from aftercare.models.field import Booking, BookingStatus, Engineer, Partner


class SlotTaken(Exception):
    """The interval overlaps another live booking or an unexpired hold of that engineer."""

    def __init__(self, engineer_id: str, start: datetime, end: datetime, detail: str = "") -> None:
        super().__init__(
            f"{engineer_id} is not free {start.isoformat()}..{end.isoformat()}"
            + (f": {detail}" if detail else "")
        )
        self.engineer_id = engineer_id
        self.start = start
        self.end = end


class BookingConflict(Exception):
    """The booking changed under the caller (version or status no longer what it read)."""


class BookingNotFound(Exception):
    pass


class TicketAlreadyBooked(BookingConflict):
    """The ticket already has a live booking (one live visit per ticket); `booking_id` is it."""

    def __init__(self, ticket_id: str, booking_id: str) -> None:
        super().__init__(f"ticket {ticket_id} already has the live booking {booking_id}")
        self.ticket_id = ticket_id
        self.booking_id = booking_id


@dataclass(frozen=True)
class BusyInterval:
    """Time of one engineer taken by a live booking (`booking_id`) or an unexpired hold."""

    start: datetime
    end: datetime
    holder: str
    booking_id: str | None = None


class EngineerDirectory(Protocol):
    def list_engineers(self, region: str | None = None) -> list[Engineer]: ...

    def get_engineer(self, engineer_id: str) -> Engineer | None: ...

    def list_partners(self) -> list[Partner]: ...

    def put_engineer(self, engineer: Engineer) -> None: ...

    def put_partner(self, partner: Partner) -> None: ...


class Calendar(Protocol):
    """Holds and bookings of engineers' time; every method is one atomic conditional write."""

    def hold(
        self,
        *,
        engineer_id: str,
        start: datetime,
        end: datetime,
        holder: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        """Hold the interval for `holder` until `expires_at`; `SlotTaken` if not free at `now`
        (an expired hold is free; the same holder may renew its own hold)."""
        ...

    def book(
        self,
        booking: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        """Put a live booking on its engineer's calendar (taking over `holder`'s hold of the
        same interval if given); `SlotTaken` if the interval is not free at `now`.

        `ticket_move` (the ticket as read, its new status and dispatch state, the timeline
        entry) is written in the same transaction, conditioned on the ticket's status and
        version: `ConcurrentUpdate` if it moved on, and then no booking is left behind."""
        ...

    def reschedule(
        self,
        old: Booking,
        new: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        """Free `old`'s interval and take `new`'s in one transaction (`old` becomes cancelled);
        `ticket_move` as in `book`."""
        ...

    def set_status(
        self,
        booking: Booking,
        status: BookingStatus,
        expected_version: int,
        *,
        actor: str = "system",
        now: datetime | None = None,
        ticket_move: DispatchMark | None = None,
        **changes: object,
    ) -> Booking:
        """Move a booking to `status` (freeing its time when it stops being live);
        `BookingConflict` when its version moved on. `changes` are Booking fields (reason,
        notes, parts_used, verification); `actor` is who it is on the ticket's timeline;
        `ticket_move` as in `book` (a cancellation re-opens the ticket for dispatch)."""
        ...


class CalendarReads(Protocol):
    """What is taken on an engineer's calendar (for offering slots; never for deciding a write)."""

    def busy(
        self, engineer_id: str, start: datetime, end: datetime, now: datetime
    ) -> list[BusyInterval]:
        """Live bookings and holds unexpired at `now` overlapping `start`..`end`, by start."""
        ...


class BookingReads(Protocol):
    def get_booking(self, booking_id: str) -> Booking: ...

    def bookings_for_ticket(self, ticket_id: str) -> list[Booking]: ...

    def bookings_for_engineer(self, engineer_id: str, day: date) -> list[Booking]: ...

    def board(self, day: date, region: str | None = None) -> list[Booking]: ...

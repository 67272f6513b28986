"""In-memory Calendar + BookingReads with the adapter's conditions: no overlap of live bookings
of one engineer, version-checked status changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftercare.domain.ports import BookingConflict, BookingNotFound, SlotTaken
from aftercare.domain.ports.dispatch import DispatchMark
from aftercare.models.field import LIVE_BOOKING_STATUSES, Booking, BookingStatus

from tests.fakes.booking_reads import InMemoryBookingReads


class FakeCalendar(InMemoryBookingReads):
    def __init__(self, *bookings: Booking) -> None:
        self.bookings: dict[str, Booking] = {b.booking_id: b for b in bookings}
        self.writes = 0

    # Calendar
    def hold(self, **_: Any) -> None:  # pragma: no cover - not used by visits
        raise NotImplementedError

    def book(
        self,
        booking: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        if ticket_move is not None:  # pragma: no cover - visits book no ticket moves
            raise NotImplementedError
        for other in self.bookings.values():
            if (
                other.engineer_id == booking.engineer_id
                and other.status in LIVE_BOOKING_STATUSES
                and other.start < booking.end
                and booking.start < other.end
            ):
                raise SlotTaken(booking.engineer_id, booking.start, booking.end)
        self.bookings[booking.booking_id] = booking
        self.writes += 1

    def reschedule(
        self,
        old: Booking,
        new: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        raise NotImplementedError  # pragma: no cover - not used by visits

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
        if ticket_move is not None:  # pragma: no cover - visits move the ticket themselves
            raise NotImplementedError
        current = self.bookings.get(booking.booking_id)
        if current is None:
            raise BookingNotFound(booking.booking_id)
        if current.version != expected_version:
            raise BookingConflict(f"{booking.booking_id} is at version {current.version}")
        at = now
        updated = current.model_copy(
            update={**changes, "status": status, "version": current.version + 1}
            | ({"updated_at": at} if at else {})
        )
        self.bookings[booking.booking_id] = updated
        self.writes += 1
        return updated

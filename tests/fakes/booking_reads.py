"""BookingReads over an in-memory dict of bookings, shared by the calendar fakes."""

from __future__ import annotations

from datetime import date

from aftercare.domain.ports.field import BookingNotFound
from aftercare.models.field import Booking


class InMemoryBookingReads:
    """The read side of a calendar fake: its subclass keeps `self.bookings` by booking id."""

    bookings: dict[str, Booking]

    def get_booking(self, booking_id: str) -> Booking:
        if booking_id not in self.bookings:
            raise BookingNotFound(booking_id)
        return self.bookings[booking_id]

    def bookings_for_ticket(self, ticket_id: str) -> list[Booking]:
        return [b for b in self.bookings.values() if b.ticket_id == ticket_id]

    def bookings_for_engineer(self, engineer_id: str, day: date) -> list[Booking]:
        return [
            b
            for b in self.bookings.values()
            if b.engineer_id == engineer_id and b.start.date() == day
        ]

    def board(self, day: date, region: str | None = None) -> list[Booking]:
        """A day's bookings in the adapter's order (start, then engineer)."""
        return sorted(
            (
                b
                for b in self.bookings.values()
                if b.start.date() == day and (region is None or b.region == region)
            ),
            key=lambda b: (b.start, b.engineer_id),
        )

"""Engineers, partners and bookings for dispatch tests, and in-memory field-service ports with
the adapter's semantics (the calendar refuses any overlap with a live booking or a hold)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from aftercare.domain.ports.dispatch import DispatchMark
from aftercare.domain.ports.errors import ConcurrentUpdate, TicketNotFound
from aftercare.domain.ports.field import BookingConflict, SlotTaken, TicketAlreadyBooked
from aftercare.domain.ports.records import TicketDetail
from aftercare.domain.tickets import Ticket
from aftercare.models.field import (
    LIVE_BOOKING_STATUSES,
    Booking,
    BookingSource,
    BookingStatus,
    Engineer,
    EngineerKind,
    GeoPoint,
    Partner,
    Shift,
    Skill,
    Weekday,
)
from aftercare.models.tickets import TicketFlag, TimelineEntry
from aftercare.models.visits import VisitOutcome

from tests.fakes.booking_reads import InMemoryBookingReads

MONDAY = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # a Monday morning, before shifts start
DUBLIN = GeoPoint(lat=53.35, lon=-6.26)
WEEKDAY_HOURS = {
    d: [Shift(start=time(8), end=time(17))]
    for d in (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
}


def engineer(engineer_id: str = "E-ann", **overrides: Any) -> Engineer:
    fields: dict[str, Any] = {
        "engineer_id": engineer_id,
        "name": engineer_id.removeprefix("E-").title(),
        "kind": EngineerKind.IN_HOUSE,
        "skills": [Skill(model="*", category="*", level=2)],
        "regions": ["eu-west"],
        "home": DUBLIN,
        "time_zone": "Europe/Dublin",
        "working_hours": WEEKDAY_HOURS,
        "cost_per_visit": 40,
    }
    fields.update(overrides)
    return Engineer(**fields)


def partner(**overrides: Any) -> Partner:
    fields: dict[str, Any] = {
        "partner_id": "PTN-west",
        "name": "West Repairs",
        "regions": ["eu-west"],
        "daily_job_cap": 2,
        "cost_per_visit": 60,
        "promised_response_h": 24,
    }
    fields.update(overrides)
    return Partner(**fields)


def booking(engineer_id: str, start: datetime, minutes: int = 60, **overrides: Any) -> Booking:
    fields: dict[str, Any] = {
        "booking_id": f"B-{engineer_id}-{start:%d%H%M}",
        "ticket_id": "T-OTHER",
        "engineer_id": engineer_id,
        "customer_id": "c-other",
        "thing": "other",
        "region": "eu-west",
        "start": start,
        "end": start + timedelta(minutes=minutes),
        "time_zone": "Europe/Dublin",
        "status": BookingStatus.SCHEDULED,
        "source": BookingSource.CUSTOMER,
        "created_at": start - timedelta(days=1),
        "updated_at": start - timedelta(days=1),
        "created_by": "test",
    }
    fields.update(overrides)
    return Booking(**fields)


class FakeFieldService(InMemoryBookingReads):
    """EngineerDirectory + Calendar + BookingReads in memory; every write checks overlap first
    and applies at once (one thread: as atomic as the adapter's conditional write)."""

    def __init__(self, engineers: list[Engineer], partners: list[Partner] | None = None) -> None:
        self.engineers = {e.engineer_id: e for e in engineers}
        self.partners = {p.partner_id: p for p in partners or []}
        self.bookings: dict[str, Booking] = {}
        self.holds: list[tuple[str, datetime, datetime, str, datetime]] = []
        self.refuse_next: set[str] = set()  # engineers whose next write loses a race
        # The tickets a write's `ticket_move` lands on (the adapter: the same transaction).
        self.ticket_moves: FakeDispatchMarks | None = None

    def _check_move(self, move: DispatchMark | None) -> None:
        """Refuse the whole write when the ticket moved on since it was read."""
        if move is None or self.ticket_moves is None:
            return
        current = self.ticket_moves.tickets[move.ticket.ticket_id]
        if (current.version, current.status) != (move.ticket.version, move.ticket.status):
            raise ConcurrentUpdate(current.ticket_id)

    def _apply_move(self, move: DispatchMark | None) -> None:
        if move is not None and self.ticket_moves is not None:
            self.ticket_moves.mark_dispatch(move)

    # EngineerDirectory
    def list_engineers(self, region: str | None = None) -> list[Engineer]:
        return [e for e in self.engineers.values() if region is None or region in e.regions]

    def get_engineer(self, engineer_id: str) -> Engineer | None:
        return self.engineers.get(engineer_id)

    def list_partners(self) -> list[Partner]:
        return list(self.partners.values())

    def put_engineer(self, engineer: Engineer) -> None:
        self.engineers[engineer.engineer_id] = engineer

    def put_partner(self, partner: Partner) -> None:
        self.partners[partner.partner_id] = partner

    # Calendar
    def _free(self, engineer_id: str, start: datetime, end: datetime, now: datetime) -> bool:
        if engineer_id in self.refuse_next:
            self.refuse_next.discard(engineer_id)
            return False
        for b in self.bookings.values():
            live = b.engineer_id == engineer_id and b.status in LIVE_BOOKING_STATUSES
            if live and b.start < end and start < b.end:
                return False
        return not any(
            e == engineer_id and s < end and start < f and expires > now
            for e, s, f, _, expires in self.holds
        )

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
        if not self._free(engineer_id, start, end, now):
            raise SlotTaken(engineer_id, start, end)
        self.holds.append((engineer_id, start, end, holder, expires_at))

    def book(
        self,
        booking: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        if not self._free(booking.engineer_id, booking.start, booking.end, now):
            raise SlotTaken(booking.engineer_id, booking.start, booking.end)
        live = [
            b
            for b in self.bookings.values()
            if b.ticket_id == booking.ticket_id and b.status in LIVE_BOOKING_STATUSES
        ]
        if live:
            raise TicketAlreadyBooked(booking.ticket_id, live[0].booking_id)
        self._check_move(ticket_move)
        self.bookings[booking.booking_id] = booking
        self._apply_move(ticket_move)

    def reschedule(
        self,
        old: Booking,
        new: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        current = self.bookings.pop(old.booking_id)
        if not self._free(new.engineer_id, new.start, new.end, now):
            self.bookings[old.booking_id] = current
            raise SlotTaken(new.engineer_id, new.start, new.end)
        self.bookings[old.booking_id] = current
        self._check_move(ticket_move)
        self.bookings[old.booking_id] = current.model_copy(
            update={"status": BookingStatus.CANCELLED, "version": current.version + 1}
        )
        self.bookings[new.booking_id] = new
        self._apply_move(ticket_move)

    def set_status(
        self,
        booking: Booking,
        status: BookingStatus,
        expected_version: int,
        *,
        ticket_move: DispatchMark | None = None,
        **changes: object,
    ) -> Booking:
        current = self.bookings.get(booking.booking_id)
        if current is None or current.version != expected_version:
            raise BookingConflict(booking.booking_id)
        self._check_move(ticket_move)
        updated = current.model_copy(update={"status": status, "version": expected_version + 1})
        self.bookings[booking.booking_id] = updated
        self._apply_move(ticket_move)
        return updated


class FakeDispatchMarks:
    """DispatchMarks + TicketLookup in memory, version-guarded like the adapter."""

    def __init__(self, *tickets: Ticket) -> None:
        self.tickets = {t.ticket_id: t for t in tickets}
        self.marks: list[DispatchMark] = []
        self.timeline: list[TimelineEntry] = []

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        if ticket_id not in self.tickets:
            raise TicketNotFound(ticket_id)
        return TicketDetail(ticket=self.tickets[ticket_id], occurrences=[], timeline=self.timeline)

    def mark_dispatch(self, mark: DispatchMark) -> None:
        current = self.tickets[mark.ticket.ticket_id]
        if current.version != mark.ticket.version:
            raise ConcurrentUpdate(current.ticket_id)
        update: dict[str, Any] = {
            "version": current.version + 1,
            "dispatch_state": mark.state.value,
        }
        if mark.to_status is not None:
            update["status"] = mark.to_status
        if mark.flag and TicketFlag.NEEDS_ONSITE_DISPATCH not in current.flags:
            update["flags"] = [*current.flags, TicketFlag.NEEDS_ONSITE_DISPATCH]
        self.tickets[current.ticket_id] = current.model_copy(update=update)
        self.marks.append(mark)
        self.timeline.append(mark.entry)


class FakeLeadTimes:
    def __init__(self, days: dict[str, int] | None = None) -> None:
        self.days = days or {}

    def lead_days(self, skus: list[str]) -> dict[str, int]:
        return {s: self.days[s] for s in skus if s in self.days}


class FakeCustomerPreferences:
    """`CustomerPreferences` from a dict; records whose record was read."""

    def __init__(self, preferred: dict[str, list[str]] | None = None) -> None:
        self.preferred = preferred or {}
        self.reads: list[str] = []

    def preferred_engineers(self, customer_id: str) -> list[str]:
        self.reads.append(customer_id)
        return list(self.preferred.get(customer_id, []))


class FakeFixHistory:
    """`FixHistory` from outcomes given per engineer (any model and code); records the reads."""

    def __init__(self, outcomes: dict[str, list[VisitOutcome]] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.reads: list[tuple[str, str, str]] = []

    def visit_outcomes(self, engineer_id: str, model: str, fault_code: str) -> list[VisitOutcome]:
        self.reads.append((engineer_id, model, fault_code))
        return list(self.outcomes.get(engineer_id, []))

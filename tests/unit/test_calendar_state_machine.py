"""No double booking, whatever happens: a hypothesis state machine drives holds, customer
bookings, dispatcher assignments, reschedules, cancellations, job progress and the clock
(expiring holds) through the real calendar adapter on moto, against a reference model.

After every step, for every engineer: live bookings never overlap, each live booking owns
exactly its own cells, no cell belongs to a finished booking, no unexpired hold overlaps a
live booking, and every write succeeded exactly when the reference model says the time was
free (no overlap let through, no free time refused); at the end every booking is stored with
the model's status. `CALENDAR_EXAMPLES=N` runs more examples (default 12).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.field_items import CELL, cells, epoch
from aftercare.domain.ports import SlotTaken, TicketAlreadyBooked
from aftercare.models.field import LIVE_BOOKING_STATUSES, Booking, BookingSource, BookingStatus
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule
from moto import mock_aws

from tests.fakes.field import booking, field_stores

DAY = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
ENGINEERS = ("a", "b")
TICKETS = ("t0", "t1", "t2", "t3", "t4")
ENDINGS = (BookingStatus.CANCELLED, BookingStatus.EN_ROUTE, BookingStatus.CANNOT_COMPLETE)
starts = st.integers(0, 15).map(lambda n: DAY + CELL * n)
lengths = st.integers(1, 4)
pytestmark = pytest.mark.usefixtures("fake_aws_credentials")


class World:
    """One moto account for all examples; each example gets its own (small) tables: moto
    copies every table a transaction touches, so a shared, growing table would dominate."""

    instance: World | None = None
    runs = itertools.count()

    def __init__(self) -> None:
        self.mock = mock_aws()
        self.mock.start()
        self.ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")

    @classmethod
    def get(cls) -> World:
        if cls.instance is None:
            cls.instance = World()
        return cls.instance


@pytest.fixture(autouse=True, scope="module")
def _world_is_torn_down() -> Any:
    yield
    if World.instance is not None:
        World.instance.mock.stop()
        World.instance = None


@dataclass
class Cell:
    holder: str
    expires: int | None = None  # epoch seconds, holds only
    booking_id: str | None = None


@dataclass
class Model:
    """What the calendar must contain: cells per (engineer, instant), bookings, live claims."""

    cells: dict[tuple[str, datetime], Cell] = field(default_factory=dict)
    bookings: dict[str, Booking] = field(default_factory=dict)
    live_by_ticket: dict[str, str] = field(default_factory=dict)

    def free(self, engineer: str, at: datetime, me: str, now: datetime) -> bool:
        cell = self.cells.get((engineer, at))
        if cell is None or cell.holder == me:
            return True
        return cell.expires is not None and cell.expires < epoch(now)


class CalendarMachine(RuleBasedStateMachine):
    live = Bundle("live")

    def __init__(self) -> None:
        super().__init__()
        run = next(World.runs)
        self.ddb = self.connect()
        self.stage = f"sm{run}"
        self.calendar: DynamoCalendar = field_stores(self.ddb, stage=self.stage)[0]
        self.engineers = {e: f"E-r{run}{e}" for e in ENGINEERS}
        self.tickets = {t: f"T-r{run}{t}" for t in TICKETS}
        self.now = DAY - timedelta(days=1)
        self.model = Model()

    def connect(self) -> Any:
        """The DynamoDB client the example's tables live on (in-process moto here)."""
        return World.get().ddb

    def teardown(self) -> None:
        # Every booking is stored with the status the model has for it.
        for booking_id, expected in self.model.bookings.items():
            assert self.calendar.get_booking(booking_id).status == expected.status
        for table in (self.calendar.table, self.calendar.tickets_table):
            self.ddb.delete_table(TableName=table)

    # ---- rules

    @rule(engineer=st.sampled_from(ENGINEERS), start=starts, n=lengths,
          ticket=st.sampled_from(TICKETS), minutes=st.integers(1, 10))  # fmt: skip
    def hold(self, engineer: str, start: datetime, n: int, ticket: str, minutes: int) -> None:
        eng, holder = self.engineers[engineer], self.tickets[ticket]
        end = start + CELL * n
        expires = self.now + timedelta(minutes=minutes)
        expected = all(self.model.free(eng, at, holder, self.now) for at in cells(start, end))
        try:
            self.calendar.hold(
                engineer_id=eng, start=start, end=end, holder=holder, expires_at=expires,
                now=self.now,
            )  # fmt: skip
            taken = True
        except SlotTaken:
            taken = False
        assert taken == expected
        if taken:
            for at in cells(start, end):
                self.model.cells[(eng, at)] = Cell(holder=holder, expires=epoch(expires))

    @rule(target=live, engineer=st.sampled_from(ENGINEERS), start=starts, n=lengths,
          ticket=st.sampled_from(TICKETS), by_customer=st.booleans())  # fmt: skip
    def book_or_assign(
        self, engineer: str, start: datetime, n: int, ticket: str, by_customer: bool
    ) -> Any:
        """A customer books with their own hold; a dispatcher assigns with none (no bypass)."""
        tid = self.tickets[ticket]
        visit = booking(
            start, 15 * n, engineer_id=self.engineers[engineer], ticket_id=tid, now=self.now,
            source=BookingSource.CUSTOMER if by_customer else BookingSource.DISPATCHER,
        )  # fmt: skip
        holder = tid if by_customer else None
        return self._book(visit, holder)

    @rule(target=live, old=live, engineer=st.sampled_from(ENGINEERS), start=starts, n=lengths)
    def reschedule(self, old: str, engineer: str, start: datetime, n: int) -> Any:
        current = self.model.bookings[old]
        if current.status not in LIVE_BOOKING_STATUSES:
            return multiple()
        new = booking(
            start, 15 * n, engineer_id=self.engineers[engineer], ticket_id=current.ticket_id,
            now=self.now, rescheduled_from=old,
        )  # fmt: skip
        kept = (
            set(cells(current.start, current.end))
            if new.engineer_id == current.engineer_id
            else set()
        )
        expected = all(
            at in kept or self.model.free(new.engineer_id, at, new.booking_id, self.now)
            for at in cells(new.start, new.end)
        )
        try:
            self.calendar.reschedule(current, new, self.now)
            moved = True
        except SlotTaken:
            moved = False
        assert moved == expected
        if not moved:
            return multiple()
        self._free(current, BookingStatus.CANCELLED)
        self._take(new)
        return new.booking_id

    @rule(booking_id=live, status=st.sampled_from(ENDINGS))
    def change_status(self, booking_id: str, status: BookingStatus) -> None:
        current = self.model.bookings[booking_id]
        if current.status not in LIVE_BOOKING_STATUSES or current.status == status:
            return
        updated = self.calendar.set_status(
            current, status, current.version, now=self.now, reason="test"
        )
        if status in LIVE_BOOKING_STATUSES:
            self.model.bookings[booking_id] = updated
        else:
            self._free(current, status)

    @rule(minutes=st.integers(1, 12))
    def clock_moves(self, minutes: int) -> None:
        """Time passes: holds expire (no sweep; only the write's condition knows)."""
        self.now += timedelta(minutes=minutes)

    # ---- the model's side of a write

    def _book(self, visit: Booking, holder: str | None) -> Any:
        me = holder or visit.booking_id
        claimed = visit.ticket_id in self.model.live_by_ticket
        free = all(
            self.model.free(visit.engineer_id, at, me, self.now)
            for at in cells(visit.start, visit.end)
        )
        try:
            self.calendar.book(visit, self.now, holder=holder)
            outcome = "booked"
        except TicketAlreadyBooked:
            outcome = "claimed"
        except SlotTaken:
            outcome = "taken"
        assert outcome == ("claimed" if claimed else "booked" if free else "taken")
        if outcome != "booked":
            return multiple()
        self._take(visit)
        return visit.booking_id

    def _take(self, visit: Booking) -> None:
        self.model.bookings[visit.booking_id] = visit
        self.model.live_by_ticket[visit.ticket_id] = visit.booking_id
        for at in cells(visit.start, visit.end):
            self.model.cells[(visit.engineer_id, at)] = Cell(
                visit.booking_id, None, visit.booking_id
            )

    def _free(self, visit: Booking, status: BookingStatus) -> None:
        self.model.bookings[visit.booking_id] = visit.model_copy(update={"status": status})
        self.model.live_by_ticket.pop(visit.ticket_id, None)
        for at in cells(visit.start, visit.end):
            cell = self.model.cells.get((visit.engineer_id, at))
            if cell is not None and cell.booking_id == visit.booking_id:
                del self.model.cells[(visit.engineer_id, at)]

    # ---- invariants, read from the table itself

    @invariant()
    def no_overlap_and_cells_match_bookings(self) -> None:
        horizon = (DAY - timedelta(hours=1), DAY + timedelta(hours=6))
        for eng in self.engineers.values():
            busy = self.calendar.busy(eng, *horizon, now=self.now)
            booked = {(b.start, b.end, b.booking_id) for b in busy if b.booking_id}
            live = [
                b for b in self.model.bookings.values()
                if b.engineer_id == eng and b.status in LIVE_BOOKING_STATUSES
            ]  # fmt: skip
            for one, other in itertools.combinations(live, 2):
                assert one.end <= other.start or other.end <= one.start, (one, other)
            # adjacent bookings are separate intervals (different holders)
            assert booked == {(b.start, b.end, b.booking_id) for b in live}
            for interval in busy:
                if interval.booking_id is None:
                    assert all(interval.end <= b.start or b.end <= interval.start for b in live), (
                        "an unexpired hold overlaps a live booking"
                    )


TestCalendarStateMachine = CalendarMachine.TestCase
TestCalendarStateMachine.settings = settings(
    max_examples=int(os.environ.get("CALENDAR_EXAMPLES", "12")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

"""Engineers' calendars and bookings on FieldTable: `Calendar` (the conditional writes that
make double booking impossible), `CalendarReads` (what is taken, for offering slots) and
`BookingReads` (patterns F3-F6). Request shapes: `adapters/field_items.py`.

Every write is one TransactWriteItems over the interval's cells, the booking item, the
ticket's live-booking claim and the ticket's timeline entry (audit), so the calendar, the
booking and its audit never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from aftercare.adapters.aws import LazyClient, from_item, to_attr, to_item
from aftercare.adapters.dispatch_marks import dispatch_mark_items
from aftercare.adapters.field_items import (
    book_items,
    booking_from_item,
    booking_key,
    calendar_query,
    hold_items,
    merged,
    reschedule_items,
    status_items,
    taken_cells,
)
from aftercare.adapters.transactions import Cancelled, Failure, TxItem, transact
from aftercare.domain.ports.dispatch import DispatchMark
from aftercare.domain.ports.errors import ConcurrentUpdate
from aftercare.domain.ports.field import (
    BookingConflict,
    BookingNotFound,
    BusyInterval,
    SlotTaken,
    TicketAlreadyBooked,
)
from aftercare.models.field import Booking, BookingStatus
from aftercare.models.tickets import TimelineEntry


def booking_audit(
    kind: str, booking: Booking, actor: str, at: datetime, **detail: Any
) -> TimelineEntry:
    """The ticket's timeline entry for a change of one of its bookings."""
    return TimelineEntry(
        at=at,
        kind=kind,
        actor=actor,
        detail={
            "booking_id": booking.booking_id,
            "engineer_id": booking.engineer_id,
            "start": booking.start.astimezone(UTC).isoformat(),
            "end": booking.end.astimezone(UTC).isoformat(),
            "time_zone": booking.time_zone,  # the customer is told the window on this clock
            "status": booking.status.value,
            "source": booking.source.value,
            **{k: v for k, v in detail.items() if v is not None},
        },
    )


class DynamoCalendar:
    """`Calendar`, `CalendarReads` and `BookingReads` on FieldTable (+ timeline entries on
    TicketsTable)."""

    ddb = LazyClient("dynamodb")

    def __init__(self, *, table: str, tickets_table: str, ddb: Any = None) -> None:
        self.table = table
        self.tickets_table = tickets_table
        self._ddb = ddb

    # ---- writes (Calendar)

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
        items = hold_items(
            self.table, engineer_id, start, end, holder=holder, expires_at=expires_at, now=now
        )
        self._write(items, taken=(engineer_id, start, end))

    def book(
        self,
        booking: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        audit = booking_audit("visit_booked", booking, booking.created_by, now)
        items = book_items(
            self.table, self.tickets_table, booking, holder=holder, now=now, audit=audit
        )
        self._write(
            items,
            self._move(ticket_move),
            taken=(booking.engineer_id, booking.start, booking.end),
            ticket=booking.ticket_id,
        )

    def _move(self, ticket_move: DispatchMark | None) -> list[TxItem]:
        """The ticket's side of a calendar write, guarded by the status and version read."""
        if ticket_move is None:
            return []
        return dispatch_mark_items(self.tickets_table, ticket_move, Failure.TICKET_MOVED)

    def reschedule(
        self,
        old: Booking,
        new: Booking,
        now: datetime,
        holder: str | None = None,
        ticket_move: DispatchMark | None = None,
    ) -> None:
        if old.ticket_id != new.ticket_id:
            raise BookingConflict("a booking moves within its own ticket")
        cancelled = old.model_copy(
            update={
                "status": BookingStatus.CANCELLED,
                "version": old.version + 1,
                "updated_at": now,
                "reason": new.reason or "rescheduled",
            }
        )
        audit = booking_audit(
            "visit_rescheduled",
            new,
            new.created_by,
            now,
            from_booking=old.booking_id,
            from_start=old.start.astimezone(UTC).isoformat(),
            reason=new.reason,
        )
        items = reschedule_items(
            self.table, self.tickets_table, old, cancelled, new, holder=holder, now=now, audit=audit
        )
        self._write(
            items,
            self._move(ticket_move),
            taken=(new.engineer_id, new.start, new.end),
            ticket=new.ticket_id,
        )

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
        at = now or datetime.now(UTC)
        updated = Booking.model_validate(
            {
                **booking.model_dump(),
                **changes,
                "status": status,
                "version": expected_version + 1,
                "updated_at": at,
            }
        )
        audit = booking_audit(
            f"visit_{status.value}",
            updated,
            actor,
            at,
            reason=updated.reason if "reason" in changes else None,
        )
        items = status_items(
            self.table,
            self.tickets_table,
            booking,
            updated,
            expected_version=expected_version,
            audit=audit,
        )
        self._write(
            items, self._move(ticket_move), taken=(booking.engineer_id, booking.start, booking.end)
        )
        return updated

    def _write(
        self,
        items: Sequence[TxItem],
        move: Sequence[TxItem] = (),
        *,
        taken: tuple[str, datetime, datetime],
        ticket: str | None = None,
    ) -> None:
        """The calendar's items and the ticket's (`move`, last) in one transaction."""

        def translate(outcome: Cancelled) -> Exception:
            ticket_codes = outcome.codes[len(items) :]
            if outcome.failure is Failure.TICKET_MOVED or (
                outcome.failure is None and "TransactionConflict" in ticket_codes
            ):
                return ConcurrentUpdate(f"the ticket changed meanwhile ({outcome.reason})")
            if outcome.failure is Failure.INACTIVE and ticket is not None:
                return TicketAlreadyBooked(ticket, str(outcome.old.get("booking_id", "")))
            if outcome.failure is Failure.LOCK_TAKEN:
                return SlotTaken(*taken, detail=outcome.reason)
            if outcome.failure is None and "TransactionConflict" in outcome.codes:
                # Another transaction was writing the same cells at that instant.
                return SlotTaken(*taken, detail="concurrent write")
            return BookingConflict(f"the booking changed meanwhile ({outcome.reason})")

        transact(self.ddb, [*items, *move], translate)

    # ---- reads (CalendarReads)

    def busy(
        self, engineer_id: str, start: datetime, end: datetime, now: datetime
    ) -> list[BusyInterval]:
        items = self._query(calendar_query(self.table, engineer_id, start, end))
        return [
            BusyInterval(start=s, end=e, holder=h, booking_id=b)
            for s, e, h, b in merged(list(taken_cells(items, now)))
        ]

    # ---- reads (BookingReads)

    def get_booking(self, booking_id: str) -> Booking:
        got = self.ddb.get_item(
            TableName=self.table, Key=to_item(booking_key(booking_id)), ConsistentRead=True
        )
        if "Item" not in got:
            raise BookingNotFound(booking_id)
        return booking_from_item(from_item(got["Item"]))

    def bookings_for_ticket(self, ticket_id: str) -> list[Booking]:
        return self._bookings("by_ticket", "ticket_id", ticket_id)

    def bookings_for_engineer(self, engineer_id: str, day: date) -> list[Booking]:
        return self._bookings("by_engineer_day", "engineer_day", f"{engineer_id}#{day.isoformat()}")

    def board(self, day: date, region: str | None = None) -> list[Booking]:
        request = _index_query(self.table, "by_day", "board_day", day.isoformat())
        if region is not None:
            request["KeyConditionExpression"] += " AND begins_with(board_key, :region)"
            request["ExpressionAttributeValues"][":region"] = to_attr(f"{region}#")
        return [booking_from_item(i) for i in self._query(request)]

    def _bookings(self, index: str, attribute: str, value: str) -> list[Booking]:
        return [
            booking_from_item(i)
            for i in self._query(_index_query(self.table, index, attribute, value))
        ]

    def _query(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = self.ddb.query(**request)
            rows += [from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return rows
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def _index_query(table: str, index: str, attribute: str, value: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": f"{attribute} = :key",
        "ExpressionAttributeValues": {":key": to_attr(value)},
    }

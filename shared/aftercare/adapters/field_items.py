"""FieldTable items and the calendar's transaction items, as pure functions.

Key layout and access patterns: the FieldTable comment in template.yaml. An engineer's time is
a run of 15-minute cells (`CAL#<engineer>` / `<UTC minute>`); every hold or booking writes all
its cells in one transaction, each conditioned on the cell being free, an expired hold, or the
writer's own hold, so two writers can never both own an instant of an engineer's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aftercare.adapters.aws import to_attr, to_item
from aftercare.adapters.transactions import Failure, TxItem
from aftercare.models.field import LIVE_BOOKING_STATUSES, Booking, Engineer, Partner

if TYPE_CHECKING:  # annotations only: the directory reads (KPI API) never write an audit entry
    from aftercare.models.tickets import TimelineEntry

CELL = timedelta(minutes=15)
MAX_CELLS = 32  # 8 hours: a reschedule (old + new cells + 4 items) stays within 100 items
DIRECTORY = "DIRECTORY"
ENGINEER_PREFIX = "ENG#"
PARTNER_PREFIX = "PTN#"
BOOKING_PREFIX = "BOOKING#"
CALENDAR_PREFIX = "CAL#"
LIVE_BOOKING = "LIVE_BOOKING"
META = "META"
CELL_FORMAT = "%Y-%m-%dT%H:%MZ"

# A cell may be taken when nobody has it, its hold expired, or it is the writer's own hold.
TAKE_CELL = "attribute_not_exists(pk) OR expires_at < :now OR holder = :me"
OWN_CELL = "holder = :booking"


class NotOnCellBoundary(ValueError):
    """Calendar intervals start and end on the 15-minute grid (UTC)."""


# --------------------------------------------------------------------------- keys


def engineer_key(engineer_id: str) -> dict[str, str]:
    return {"pk": DIRECTORY, "sk": f"{ENGINEER_PREFIX}{engineer_id}"}


def partner_key(partner_id: str) -> dict[str, str]:
    return {"pk": DIRECTORY, "sk": f"{PARTNER_PREFIX}{partner_id}"}


def booking_key(booking_id: str) -> dict[str, str]:
    return {"pk": f"{BOOKING_PREFIX}{booking_id}", "sk": META}


def live_booking_key(ticket_id: str) -> dict[str, str]:
    return {"pk": f"TICKET#{ticket_id}", "sk": LIVE_BOOKING}


def calendar_pk(engineer_id: str) -> str:
    return f"{CALENDAR_PREFIX}{engineer_id}"


def cell_sk(at: datetime) -> str:
    return at.astimezone(UTC).strftime(CELL_FORMAT)


def cell_time(sk: str) -> datetime:
    return datetime.strptime(sk, CELL_FORMAT).replace(tzinfo=UTC)


def cells(start: datetime, end: datetime) -> list[datetime]:
    """The cells an interval covers; it must lie on the grid and be non-empty."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for at in (start, end):
        if at.minute % 15 or at.second or at.microsecond:
            raise NotOnCellBoundary(f"{at.isoformat()} is not on the 15-minute grid")
    if end <= start or end - start > CELL * MAX_CELLS:
        raise NotOnCellBoundary(
            f"{start.isoformat()}..{end.isoformat()} is empty or longer than 8 hours"
        )
    return [start + CELL * n for n in range(int((end - start) / CELL))]


def epoch(at: datetime) -> int:
    return int(at.timestamp())


# --------------------------------------------------------------------------- records


def engineer_item(engineer: Engineer) -> dict[str, Any]:
    return {**engineer_key(engineer.engineer_id), **engineer.model_dump(mode="json")}


def partner_item(partner: Partner) -> dict[str, Any]:
    return {**partner_key(partner.partner_id), **partner.model_dump(mode="json")}


def local_day(booking: Booking) -> date:
    return booking.start.astimezone(ZoneInfo(booking.time_zone)).date()


def booking_item(booking: Booking) -> dict[str, Any]:
    """The booking and its index attributes (by_ticket, by_engineer_day, by_day)."""
    data = booking.model_dump(mode="json")
    start = booking.start.astimezone(UTC).isoformat()
    day = local_day(booking).isoformat()
    return {
        **booking_key(booking.booking_id),
        **data,
        "start_key": f"{start}#{booking.booking_id}",
        "engineer_day": f"{booking.engineer_id}#{day}",
        "board_day": day,
        "board_key": f"{booking.region}#{start}#{booking.booking_id}",
    }


def booking_from_item(item: Mapping[str, Any]) -> Booking:
    return Booking.model_validate(item)


# --------------------------------------------------------------------------- transaction items


def take_cell(
    table: str, engineer_id: str, at: datetime, *, owner: str, me: str, now: datetime, **extra: Any
) -> TxItem:
    """Put one cell for `owner`; fails (LOCK_TAKEN) unless free, expired or `me`'s hold."""
    item = {"pk": calendar_pk(engineer_id), "sk": cell_sk(at), "holder": owner, **extra}
    return TxItem(
        {
            "Put": {
                "TableName": table,
                "Item": to_item(item),
                "ConditionExpression": TAKE_CELL,
                "ExpressionAttributeValues": {":now": to_attr(epoch(now)), ":me": to_attr(me)},
            }
        },
        Failure.LOCK_TAKEN,
    )


def hold_items(
    table: str,
    engineer_id: str,
    start: datetime,
    end: datetime,
    *,
    holder: str,
    expires_at: datetime,
    now: datetime,
) -> list[TxItem]:
    return [
        take_cell(
            table,
            engineer_id,
            at,
            owner=holder,
            me=holder,
            now=now,
            expires_at=epoch(expires_at),
            state="held",
        )
        for at in cells(start, end)
    ]


def _booked_cell(table: str, booking: Booking, at: datetime, me: str, now: datetime) -> TxItem:
    return take_cell(
        table,
        booking.engineer_id,
        at,
        owner=booking.booking_id,
        me=me,
        now=now,
        booking_id=booking.booking_id,
        ticket_id=booking.ticket_id,
        state="booked",
    )


def _free_cell(table: str, engineer_id: str, at: datetime, booking_id: str) -> TxItem:
    return TxItem(
        {
            "Delete": {
                "TableName": table,
                "Key": to_item({"pk": calendar_pk(engineer_id), "sk": cell_sk(at)}),
                "ConditionExpression": OWN_CELL,
                "ExpressionAttributeValues": {":booking": to_attr(booking_id)},
            }
        },
        Failure.STALE,
    )


def _audit(tickets_table: str, ticket_id: str, entry: TimelineEntry) -> TxItem:
    # imported here: the ticket item layout (and the ticket models under it) is only needed by
    # the calendar's writes, not by the engineer directory's reads
    from aftercare.adapters.ticket_items import timeline_item

    return TxItem(
        {"Put": {"TableName": tickets_table, "Item": to_item(timeline_item(ticket_id, entry))}}
    )


def _new_booking(table: str, booking: Booking) -> TxItem:
    return TxItem(
        {
            "Put": {
                "TableName": table,
                "Item": to_item(booking_item(booking)),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        Failure.DUPLICATE,
    )


def _claim_ticket(table: str, booking: Booking) -> TxItem:
    """The ticket's one live booking; an existing one fails the write (INACTIVE: most telling,
    so a retry of a booking that exists is recognised before its own cells look taken)."""
    item = {**live_booking_key(booking.ticket_id), "booking_id": booking.booking_id}
    return TxItem(
        {
            "Put": {
                "TableName": table,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        Failure.INACTIVE,
    )


def _move_ticket_claim(table: str, old: Booking, new: Booking) -> TxItem:
    item = {**live_booking_key(new.ticket_id), "booking_id": new.booking_id}
    return TxItem(
        {
            "Put": {
                "TableName": table,
                "Item": to_item(item),
                "ConditionExpression": "booking_id = :old",
                "ExpressionAttributeValues": {":old": to_attr(old.booking_id)},
            }
        },
        Failure.STALE,
    )


def _release_ticket_claim(table: str, booking: Booking) -> TxItem:
    return TxItem(
        {
            "Delete": {
                "TableName": table,
                "Key": to_item(live_booking_key(booking.ticket_id)),
                "ConditionExpression": "booking_id = :b",
                "ExpressionAttributeValues": {":b": to_attr(booking.booking_id)},
            }
        },
        Failure.STALE,
    )


def _live_values() -> dict[str, Any]:
    return {f":live{n}": to_attr(s.value) for n, s in enumerate(sorted(LIVE_BOOKING_STATUSES))}


def booking_update(table: str, booking: Booking, updated: Booking, expected_version: int) -> TxItem:
    """Replace a live booking's item with `updated`, if it is still at `expected_version`."""
    live = _live_values()
    return TxItem(
        {
            "Put": {
                "TableName": table,
                "Item": to_item(booking_item(updated)),
                "ConditionExpression": f"version = :v AND #s IN ({', '.join(live)})",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":v": to_attr(expected_version), **live},
            }
        },
        Failure.STALE,
    )


def book_items(
    table: str,
    tickets_table: str,
    booking: Booking,
    *,
    holder: str | None,
    now: datetime,
    audit: TimelineEntry,
) -> list[TxItem]:
    me = holder or booking.booking_id
    return [
        _claim_ticket(table, booking),
        _new_booking(table, booking),
        *(_booked_cell(table, booking, at, me, now) for at in cells(booking.start, booking.end)),
        _audit(tickets_table, booking.ticket_id, audit),
    ]


def reschedule_items(
    table: str,
    tickets_table: str,
    old: Booking,
    cancelled: Booking,
    new: Booking,
    *,
    holder: str | None,
    now: datetime,
    audit: TimelineEntry,
) -> list[TxItem]:
    """Old booking cancelled, its cells freed, the new one's taken: one transaction. A cell in
    both intervals (same engineer) is handed over in one Put (an item appears once)."""
    old_cells = set(cells(old.start, old.end))
    new_cells = cells(new.start, new.end)
    same_engineer = old.engineer_id == new.engineer_id
    kept = old_cells.intersection(new_cells) if same_engineer else set()
    me = holder or new.booking_id
    items = [
        booking_update(table, old, cancelled, old.version),
        _new_booking(table, new),
        _move_ticket_claim(table, old, new),
    ]
    items += [
        _free_cell(table, old.engineer_id, at, old.booking_id) for at in sorted(old_cells - kept)
    ]
    for at in new_cells:
        if at in kept:
            items.append(_handover_cell(table, old, new, at))
        else:
            items.append(_booked_cell(table, new, at, me, now))
    items.append(_audit(tickets_table, new.ticket_id, audit))
    return items


def _handover_cell(table: str, old: Booking, new: Booking, at: datetime) -> TxItem:
    item = {
        "pk": calendar_pk(new.engineer_id),
        "sk": cell_sk(at),
        "holder": new.booking_id,
        "booking_id": new.booking_id,
        "ticket_id": new.ticket_id,
        "state": "booked",
    }
    return TxItem(
        {
            "Put": {
                "TableName": table,
                "Item": to_item(item),
                "ConditionExpression": OWN_CELL,
                "ExpressionAttributeValues": {":booking": to_attr(old.booking_id)},
            }
        },
        Failure.STALE,
    )


def status_items(
    table: str,
    tickets_table: str,
    booking: Booking,
    updated: Booking,
    *,
    expected_version: int,
    audit: TimelineEntry,
) -> list[TxItem]:
    """The status change; when the booking stops being live its cells and the ticket's claim
    go in the same transaction."""
    items = [booking_update(table, booking, updated, expected_version)]
    if updated.status not in LIVE_BOOKING_STATUSES:
        items.append(_release_ticket_claim(table, booking))
        items += [
            _free_cell(table, booking.engineer_id, at, booking.booking_id)
            for at in cells(booking.start, booking.end)
        ]
    items.append(_audit(tickets_table, booking.ticket_id, audit))
    return items


def calendar_query(table: str, engineer_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """F7: the cells of `start`..`end` (end exclusive), consistently read."""
    last = end.astimezone(UTC) - timedelta(seconds=1)
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
        "ExpressionAttributeValues": {
            ":pk": to_attr(calendar_pk(engineer_id)),
            ":from": to_attr(cell_sk(_floor(start))),
            ":to": to_attr(cell_sk(last)),
        },
        "ConsistentRead": True,
    }


def _floor(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def taken_cells(
    items: Iterable[Mapping[str, Any]], now: datetime
) -> Iterator[tuple[datetime, str, str | None]]:
    """(cell start, holder, booking id) of cells taken at `now` (expired holds are free)."""
    moment = epoch(now)
    for item in items:
        expires = item.get("expires_at")
        if expires is not None and int(expires) < moment:
            continue
        yield cell_time(str(item["sk"])), str(item["holder"]), item.get("booking_id")


def merged(
    taken: Sequence[tuple[datetime, str, str | None]],
) -> list[tuple[datetime, datetime, str, str | None]]:
    """Adjacent cells of the same holder as one interval."""
    out: list[tuple[datetime, datetime, str, str | None]] = []
    for at, holder, booking_id in sorted(taken):
        if out and out[-1][1] == at and out[-1][2] == holder:
            out[-1] = (out[-1][0], at + CELL, holder, booking_id)
        else:
            out.append((at, at + CELL, holder, booking_id))
    return out

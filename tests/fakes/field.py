"""Field-service records for tests: an engineer, a booking, a calendar on moto tables."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.domain.ports import ConcurrentUpdate, TicketDetail, TicketNotFound
from aftercare.domain.tickets import StatusChange, Ticket
from aftercare.models.field import (
    Booking,
    BookingSource,
    BookingStatus,
    Engineer,
    EngineerKind,
    GeoPoint,
    Shift,
    Skill,
    Weekday,
)

from tests.fakes.tables import create_template_tables


class Tickets:
    """`StatusChanges` over tickets in memory; `races` makes the next writes lose to another
    writer (ConcurrentUpdate) as a version-guarded write would."""

    def __init__(self, *tickets: Ticket) -> None:
        self.tickets = {t.ticket_id: t for t in tickets}
        self.changes: list[StatusChange] = []
        self.races = 0

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        if ticket_id not in self.tickets:
            raise TicketNotFound(ticket_id)
        return TicketDetail(ticket=self.tickets[ticket_id], occurrences=[], timeline=[])

    def apply_status_change(self, change: StatusChange) -> None:
        current = self.tickets[change.ticket.ticket_id]
        if self.races:
            self.races -= 1
            raise ConcurrentUpdate("moved on")
        if (current.status, current.version) != (change.ticket.status, change.ticket.version):
            raise ConcurrentUpdate("moved on")
        self.tickets[current.ticket_id] = current.model_copy(
            update={"status": change.target, "version": current.version + 1}
        )
        self.changes.append(change)


FIELD_TABLES = ("FieldTable", "TicketsTable")
NINE_TO_FIVE = [Shift(start=time(9), end=time(17))]


@cache
def _table_requests() -> list[dict[str, Any]]:
    """The tables' CreateTable requests for stage "test" (parsing the template once)."""
    recorder = _Recorder()
    create_template_tables(recorder, FIELD_TABLES)
    return recorder.requests


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def create_table(self, **request: Any) -> None:
        self.requests.append(request)


def field_stores(ddb: Any, stage: str = "test") -> tuple[DynamoCalendar, DynamoEngineerDirectory]:
    """FieldTable and TicketsTable from template.yaml on `ddb`, and the adapters over them."""
    for request in _table_requests():
        name = str(request["TableName"]).removesuffix("-test") + f"-{stage}"
        ddb.create_table(**{**request, "TableName": name})
    field = f"aftercare-field-{stage}"
    calendar = DynamoCalendar(table=field, tickets_table=f"aftercare-tickets-{stage}", ddb=ddb)
    return calendar, DynamoEngineerDirectory(table=field, ddb=ddb)


def engineer(engineer_id: str = "E-ada", **changes: Any) -> Engineer:
    data: dict[str, Any] = {
        "engineer_id": engineer_id,
        "name": "Ada",
        "kind": EngineerKind.IN_HOUSE,
        "skills": [Skill(level=2)],
        "regions": ["eu-west"],
        "home": GeoPoint(lat=53.35, lon=-6.26),
        "time_zone": "Europe/Dublin",
        "working_hours": {
            d: NINE_TO_FIVE
            for d in (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
        },
    }
    return Engineer.model_validate({**data, **changes})


def booking(
    start: datetime,
    minutes: int = 60,
    *,
    engineer_id: str = "E-ada",
    ticket_id: str = "T-1",
    now: datetime | None = None,
    **changes: Any,
) -> Booking:
    at = now or start - timedelta(days=1)
    data: dict[str, Any] = {
        "booking_id": f"B-{uuid.uuid4().hex[:12]}",
        "ticket_id": ticket_id,
        "engineer_id": engineer_id,
        "customer_id": "c-0001",
        "thing": "ac-hp-0001",
        "region": "eu-west",
        "start": start,
        "end": start + timedelta(minutes=minutes),
        "time_zone": "Europe/Dublin",
        "status": BookingStatus.SCHEDULED,
        "source": BookingSource.CUSTOMER,
        "created_at": at,
        "updated_at": at,
        "created_by": "user:cust-0001",
    }
    return Booking.model_validate({**data, **changes})

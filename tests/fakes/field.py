"""Field-service records for tests: an engineer, a booking, a calendar on moto tables."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.adapters.ticket_items import ticket_from_item, ticket_item, ticket_key
from aftercare.domain.ports import TicketDetail
from aftercare.domain.tickets import Ticket
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


class Tickets(DynamoTicketStore):
    """The ticket ports on the moto TicketsTable that the calendar's transactions move tickets
    in. `races`: the next reads are each followed by another writer's change (the version moves
    on), so the write that follows them loses, as a real concurrent change would make it."""

    def __init__(self, ddb: Any, *tickets: Ticket, stage: str = "test") -> None:
        super().__init__(
            tickets_table=f"aftercare-tickets-{stage}",
            devices_table=f"aftercare-devices-{stage}",
            customers_table=f"aftercare-customers-{stage}",
            ddb=ddb,
        )
        self.races = 0
        for ticket in tickets:
            self.put(ticket)

    def put(self, ticket: Ticket) -> None:
        self.ddb.put_item(TableName=self.tickets_table, Item=to_item(ticket_item(ticket)))

    def get_ticket(self, ticket_id: str) -> TicketDetail:
        detail = super().get_ticket(ticket_id)
        if self.races:
            self.races -= 1
            self.ddb.update_item(
                TableName=self.tickets_table,
                Key=to_item(ticket_key(ticket_id)),
                UpdateExpression="ADD version :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        return detail

    @property
    def tickets(self) -> dict[str, Ticket]:
        """Every ticket as stored now, by id."""
        items = self.ddb.scan(TableName=self.tickets_table).get("Items", [])
        found = [ticket_from_item(from_item(i)) for i in items if i["sk"]["S"] == "META"]
        return {t.ticket_id: t for t in found}


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

"""The dispatch API's bodies and views (`POST /tickets/{id}/dispatch`, `POST /dispatch/assign`,
`GET /dispatch/board`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from aftercare.models.field import Booking, BookingId, BookingStatus, EngineerId
from aftercare.models.ids import TicketId

Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,12}-[a-z]{2,12}$")]


class DispatchRequest(BaseModel):
    """An engineer says the ticket needs a visit, and why."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class DispatchRequested(BaseModel):
    ticket_id: TicketId
    dispatch_state: str


class AssignRequest(BaseModel):
    """A manager puts the ticket's visit on an engineer's calendar at `start`."""

    model_config = ConfigDict(extra="forbid")

    ticket_id: TicketId
    engineer_id: EngineerId
    start: AwareDatetime


class BoardRow(BaseModel):
    booking_id: BookingId
    ticket_id: str
    engineer_id: EngineerId
    start: AwareDatetime
    end: AwareDatetime
    status: BookingStatus

    @classmethod
    def of(cls, booking: Booking) -> BoardRow:
        return cls(
            booking_id=booking.booking_id,
            ticket_id=booking.ticket_id,
            engineer_id=booking.engineer_id,
            start=booking.start,
            end=booking.end,
            status=booking.status,
        )

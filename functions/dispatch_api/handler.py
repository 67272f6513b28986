"""Dispatch API (HTTP API `ServiceApi`, JWT authorizer): who goes, and when.

    POST /tickets/{ticket_id}/dispatch  an engineer says the ticket needs a visit {"reason"}
    POST /dispatch/assign               a manager books {"ticket_id", "engineer_id", "start"}
    GET  /dispatch/board?date=&region=  staff: the day's bookings

A function of its own on the same API (its role writes bookings and dispatch decisions), built
from the shared resolver (`aftercare.api.resolver`): callers, the error body and the OpenAPI
document are the support API's. An assignment is the same conditional calendar write as an
automatic one: 409 `slot_taken` when it overlaps a live booking or an unexpired hold.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Annotated, Any

from aftercare.adapters.dispatch_deps import dispatch_deps_from_env
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, map_errors
from aftercare.api.resolver import http_api
from aftercare.domain.access import Caller
from aftercare.domain.dispatch_desk import assign, board, request_visit
from aftercare.domain.dispatching import (
    DispatchDeps,
    EngineerNotEligible,
    EngineerUnknown,
    InvalidStart,
    NotDispatchable,
)
from aftercare.domain.ports.errors import ConcurrentUpdate, TicketNotFound
from aftercare.domain.ports.field import BookingConflict, SlotTaken
from aftercare.models.dispatch_api import (
    AssignRequest,
    BoardRow,
    DispatchRequest,
    DispatchRequested,
    Region,
)
from aftercare.models.field import Booking
from aftercare.models.ids import TicketId
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = http_api()


def deps() -> DispatchDeps:
    return dispatch_deps_from_env()


def caller() -> Caller:
    return current_caller(app)


@app.post(
    "/tickets/<ticket_id>/dispatch",
    summary="Say the ticket needs an on-site visit (engineers)",
    tags=["dispatch"],
    status_code=HTTPStatus.ACCEPTED,
    responses=documented(202, "flagged; the Dispatcher picks it up", 409),
)
def request_dispatch(
    ticket_id: Annotated[TicketId, PathParam()], body: DispatchRequest
) -> DispatchRequested:
    state = request_visit(caller(), ticket_id, body.reason, deps(), now=datetime.now(UTC))
    metrics.add_metric(name="DispatchRequested", unit=MetricUnit.Count, value=1)
    return DispatchRequested(ticket_id=ticket_id, dispatch_state=state.value)


@app.post(
    "/dispatch/assign",
    summary="Book a ticket's visit on an engineer's calendar by hand (managers)",
    description=(
        "The same conditional write as automatic booking: 409 `slot_taken` when the visit "
        "would overlap a live booking or an unexpired hold of that engineer; 422 "
        "`engineer_not_eligible` when the engineer fails a hard rule or does not work then, "
        "`invalid_start` off the quarter hour. "
        "A ticket that already has a live booking has it moved (one transaction)."
    ),
    tags=["dispatch"],
    status_code=HTTPStatus.CREATED,
    responses=documented(201, "the booking", 409),
)
def assign_visit(body: AssignRequest) -> Booking:
    booking = assign(
        caller(), body.ticket_id, body.engineer_id, body.start, deps(), now=datetime.now(UTC)
    )
    metrics.add_metric(name="DispatchAssigned", unit=MetricUnit.Count, value=1)
    logger.info("visit assigned", extra={"booking_id": booking.booking_id})
    return booking


@app.get(
    "/dispatch/board",
    summary="The day's bookings, optionally one region's (staff)",
    tags=["dispatch"],
    responses=documented(200, "bookings by start"),
)
def dispatch_board(
    day: Annotated[date | None, Query(alias="date")] = None,
    region: Annotated[Region | None, Query()] = None,
) -> list[BoardRow]:
    when = day or datetime.now(UTC).date()
    return [BoardRow.of(b) for b in board(caller(), when, region, deps())]


map_errors(
    app,
    {
        (TicketNotFound, EngineerUnknown): (HTTPStatus.NOT_FOUND, "not_found"),
        SlotTaken: (HTTPStatus.CONFLICT, "slot_taken"),
        NotDispatchable: (HTTPStatus.CONFLICT, "not_dispatchable"),
        (ConcurrentUpdate, BookingConflict): (HTTPStatus.CONFLICT, "concurrent_update"),
        EngineerNotEligible: (HTTPStatus.UNPROCESSABLE_ENTITY, "engineer_not_eligible"),
        InvalidStart: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_start"),
    },
)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

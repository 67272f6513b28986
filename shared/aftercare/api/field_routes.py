"""Field service routes on the support API: slots, bookings and the engineer directory.

A Powertools Router included into the support API's one resolver (`functions/api/handler.py`
calls `install`), so these routes share its caller middleware, strict bodies, error body and
OpenAPI document. Errors map to HTTP here, once: `SlotTaken` is 409 `slot_taken`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.api.caller import CallerRouter
from aftercare.api.errors import documented, map_errors
from aftercare.api.route_settings import FieldSettings
from aftercare.domain.access import Caller
from aftercare.domain.calendar import (
    FieldBooking,
    InvalidBookingChange,
    InvalidSlot,
    TicketNotBookable,
    load_booking_policy,
)
from aftercare.domain.engineers import InvalidEngineer, list_engineers, put_engineer
from aftercare.domain.ports import (
    BookingConflict,
    BookingNotFound,
    ConcurrentUpdate,
    SlotTaken,
    TicketAlreadyBooked,
)
from aftercare.models.field import Booking, BookingId, Engineer, EngineerId, Slot
from aftercare.models.field_api import BookSlot, CancelBooking, EngineerRow, RescheduleBooking
from aftercare.models.ids import TicketId
from aftercare.observability import logger, metrics
from aftercare.settings import load_settings

router = CallerRouter("field_routes_app")

Region = Annotated[str, Query(pattern=r"^[a-z]{2}-[a-z]+$")]


@cache
def field_service() -> FieldBooking:
    settings = load_settings(FieldSettings)
    calendar = DynamoCalendar(table=settings.field_table, tickets_table=settings.tickets_table)
    return FieldBooking(
        tickets=DynamoTicketStore(
            tickets_table=settings.tickets_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
            inventory_table=settings.inventory_table,
        ),
        directory=DynamoEngineerDirectory(table=settings.field_table),
        calendar=calendar,
        calendar_reads=calendar,
        bookings=calendar,
        policy=load_booking_policy(),
    )


def caller() -> Caller:
    return router.caller()


def _json(status: HTTPStatus, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@router.get(
    "/tickets/<ticket_id>/slots",
    summary="Visit windows offered for the ticket, each held briefly for it",
    description=(
        "Free windows of engineers who cover the ticket's region and can repair its model and "
        "fault, over the next days, earliest first; local times are in the region's zone. Each "
        "offered slot is held for this ticket until `hold_expires_at`, so no other customer is "
        "offered or can book it meanwhile. Slots ending by the ticket's resolution deadline "
        "come first; later ones are marked `within_sla: false` and offered as the booking "
        "policy says (by default only when none fits)."
    ),
    tags=["field"],
    responses=documented(200, "the offered slots", 409),
)
def ticket_slots(ticket_id: Annotated[TicketId, PathParam()]) -> list[Slot]:
    return field_service().offer_slots(caller(), ticket_id, datetime.now(UTC))


@router.post(
    "/tickets/<ticket_id>/booking",
    summary="Book a visit in one of the offered slots",
    description=(
        "201 with the booking; 200 with the same booking when it is a retry of a booking that "
        "exists; 409 `slot_taken` when someone else has that time; 409 `already_booked` when "
        "the ticket has another live booking (reschedule it instead). The ticket moves to "
        "`scheduled` in the same transaction: 409 `concurrent_update` when it changed meanwhile "
        "(no booking is left behind; read it again and retry)."
    ),
    tags=["field"],
    status_code=HTTPStatus.CREATED,
    responses=documented(201, "the booking", 409, 422),
)
def book_slot(ticket_id: Annotated[TicketId, PathParam()], body: BookSlot) -> Response[Booking]:
    booking, created = field_service().book(caller(), ticket_id, body.slot_id, datetime.now(UTC))
    if created:
        metrics.add_metric(name="VisitBooked", unit=MetricUnit.Count, value=1)
        logger.info("visit booked", extra={"booking_id": booking.booking_id})
    status = HTTPStatus.CREATED if created else HTTPStatus.OK
    return _json(status, booking.model_dump(mode="json"))


@router.get(
    "/tickets/<ticket_id>/bookings",
    summary="The ticket's bookings, live and past",
    tags=["field"],
    responses=documented(200, "the bookings, by start"),
)
def ticket_bookings(ticket_id: Annotated[TicketId, PathParam()]) -> list[Booking]:
    return field_service().bookings_of(caller(), ticket_id)


@router.get(
    "/bookings/<booking_id>",
    summary="One booking",
    tags=["field"],
    responses=documented(200, "the booking"),
)
def show_booking(booking_id: Annotated[BookingId, PathParam()]) -> Booking:
    return field_service().booking(caller(), booking_id)


@router.post(
    "/bookings/<booking_id>/reschedule",
    summary="Move a scheduled booking to another slot",
    description="The old window is freed and the new one taken in one write with the ticket's "
    "timeline entry, conditioned on the ticket's version: 409 `slot_taken` or 409 "
    "`concurrent_update` (the ticket changed meanwhile) leave the old booking as it was. "
    "Returns the new booking.",
    tags=["field"],
    status_code=HTTPStatus.CREATED,
    responses=documented(201, "the new booking", 409, 422),
)
def reschedule_booking(
    booking_id: Annotated[BookingId, PathParam()], body: RescheduleBooking
) -> Booking:
    return field_service().reschedule(
        caller(), booking_id, body.slot_id, body.reason, datetime.now(UTC)
    )


@router.post(
    "/bookings/<booking_id>/cancel",
    summary="Cancel a booking with a reason (its time is freed at once)",
    description="The time is freed and the ticket re-opened for dispatch (slots are offered "
    "again) in one transaction; 409 `concurrent_update` when the ticket changed meanwhile.",
    tags=["field"],
    responses=documented(200, "the cancelled booking", 409),
)
def cancel_booking(booking_id: Annotated[BookingId, PathParam()], body: CancelBooking) -> Booking:
    return field_service().cancel(caller(), booking_id, body.reason, datetime.now(UTC))


@router.get(
    "/engineers",
    summary="The engineer directory (staff)",
    tags=["field"],
    responses=documented(200, "engineers, by id", 403),
)
def engineers(region: Region | None = None) -> list[EngineerRow]:
    return [EngineerRow.of(e) for e in list_engineers(caller(), field_service().directory, region)]


@router.put(
    "/engineers/<engineer_id>",
    summary="Create or replace an engineer (managers)",
    tags=["field"],
    responses=documented(200, "the engineer as stored", 403, 422),
)
def update_engineer(engineer_id: Annotated[EngineerId, PathParam()], body: Engineer) -> Engineer:
    return put_engineer(caller(), field_service().directory, engineer_id, body)


def install(app: ApiGatewayResolver) -> None:
    """Include the routes and map field service's errors on `app`."""
    app.include_router(router)
    map_errors(
        app,
        {
            SlotTaken: (HTTPStatus.CONFLICT, "slot_taken"),
            TicketAlreadyBooked: (HTTPStatus.CONFLICT, "already_booked"),
            TicketNotBookable: (HTTPStatus.CONFLICT, "ticket_not_active"),
            InvalidBookingChange: (HTTPStatus.CONFLICT, "invalid_booking_change"),
            BookingConflict: (HTTPStatus.CONFLICT, "booking_conflict"),
            ConcurrentUpdate: (HTTPStatus.CONFLICT, "concurrent_update"),
            BookingNotFound: (HTTPStatus.NOT_FOUND, "not_found"),
            InvalidSlot: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_slot"),
            InvalidEngineer: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_engineer"),
        },
    )

"""Field jobs API (HTTP API `ServiceApi`, JWT authorizer): engineers work through their visits.

    GET  /me/jobs?date=D                 the calling engineer's jobs that day, ordered by start
    POST /bookings/{booking_id}/status   en_route | on_site | completed | cannot_complete

A function of its own on the same API (its role writes bookings, tickets' visit changes and
part holds, and publishes verification self-tests), built from the shared resolver
(`aftercare.api.resolver`). Engineers are identified by the ID token's `custom:engineer_id`;
managers may act on any booking. Errors use the shared `ErrorBody`: 403 not your job (or no
engineer id), 404 unknown booking, 409 `stale_version` (the booking moved on since
`expected_version`) or `invalid_transition`, 422 invalid body (e.g. cannot_complete without a
reason). The use cases are `aftercare.domain.visits`; the routes are in the support API's
OpenAPI document (`python -m infra.openapi`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aftercare.adapters.calendar import DynamoCalendar
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore, IotDataPublisher
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, map_errors
from aftercare.api.resolver import http_api
from aftercare.domain.access import Caller
from aftercare.domain.ports import BookingConflict, BookingNotFound
from aftercare.domain.visits import (
    InvalidBookingTransition,
    JobResult,
    StaleBooking,
    VisitDeps,
    jobs_today,
    set_job_status,
)
from aftercare.models.field import BookingId, EngineerId
from aftercare.models.visits import JobView, SetJobStatus
from aftercare.observability import metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = http_api()


class Settings(EnvSettings):
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str
    field_table: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up
    visit_verify_timeout_s: int


@cache
def deps() -> VisitDeps:
    settings = load_settings(Settings)  # values come from the environment
    calendar = DynamoCalendar(table=settings.field_table, tickets_table=settings.tickets_table)
    return VisitDeps(
        bookings=calendar,
        calendar=calendar,
        tickets=DynamoTicketStore(
            tickets_table=settings.tickets_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
            inventory_table=settings.inventory_table,
        ),
        diagnostics=DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        ),
        publisher=IotDataPublisher(endpoint=settings.iot_data_endpoint),
        verify_timeout=timedelta(seconds=settings.visit_verify_timeout_s),
    )


def caller() -> Caller:
    return current_caller(app)


@app.get(
    "/me/jobs",
    summary="The calling engineer's jobs on a day (default today, UTC), ordered by start",
    description=(
        "Engineers are identified by their ID token's `custom:engineer_id`; a manager may name "
        "an engineer with `engineer_id`."
    ),
    tags=["jobs"],
    responses=documented(200, "the jobs, earliest first"),
)
def my_jobs(
    day: Annotated[date | None, Query(alias="date")] = None,
    engineer_id: Annotated[EngineerId | None, Query()] = None,
) -> list[JobView]:
    on = day or datetime.now(UTC).date()
    return jobs_today(deps(), caller(), on, engineer_id=engineer_id)


@app.post(
    "/bookings/<booking_id>/status",
    summary="Report a visit's progress (the booking's engineer, or a manager)",
    description=(
        "`en_route` -> `on_site` -> `completed` | `cannot_complete` (with a `reason`), checked "
        "against `expected_version` (409 `stale_version` when the booking moved on). On site "
        "moves the ticket into repair; completed consumes the parts used (releases the other "
        "holds) and sends the device a verification self-test whose answer resolves the "
        "ticket; cannot_complete sends the ticket back to dispatch with the reason."
    ),
    tags=["jobs"],
    responses=documented(200, "the booking as it is now", 400, 409),
)
def job_status(booking_id: Annotated[BookingId, PathParam()], body: SetJobStatus) -> JobResult:
    result = set_job_status(deps(), caller(), booking_id, body, datetime.now(UTC))
    metrics.add_metric(name=f"Visit_{body.status.value}", unit=MetricUnit.Count, value=1)
    return result


map_errors(
    app,
    {
        BookingNotFound: (HTTPStatus.NOT_FOUND, "not_found"),
        (StaleBooking, BookingConflict): (HTTPStatus.CONFLICT, "stale_version"),
        InvalidBookingTransition: (HTTPStatus.CONFLICT, "invalid_transition"),
    },
)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

"""ServiceApi: the support HTTP API (API Gateway HTTP API, JWT authorizer `CognitoJwt`).

Routes are thin: parse (Powertools validates against the annotations), one `Support` call, a
view. The resolver is the one every API function shares
(`aftercare.api.resolver`): who calls is decided once per request (ID tokens only) and errors
map to the shared `ErrorBody` (`{"reason", "message"}`) in one place (the exception handlers
below and `aftercare.api.errors`).
The route groups (`aftercare.api.*_routes`) are installed by the first request to one of their
routes, so that a start defines only the models of the routes here (their settings are
validated by the first invocation all the same).
The OpenAPI document is generated from this module and the survey function's
(`python -m infra.openapi`), committed as `openapi.json` beside it and served,
unauthenticated, at `GET /openapi.json`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from aftercare.adapters.diagnostics import (
    DynamoDeviceDirectory,
    DynamoDiagnosticsStore,
    IotDataPublisher,
)
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, error, map_errors
from aftercare.api.resolver import http_api
from aftercare.api.route_settings import FieldSettings, RaisedSettings, SelfServiceSettings
from aftercare.domain.access import Caller
from aftercare.domain.diagnostics_records import DiagnosticNotFound, PublishFailed, TicketNotActive
from aftercare.domain.paging import (
    MAX_CURSOR_CHARS,
    MAX_PAGE,
    InvalidCursor,
    TicketFilters,
    decode_cursor,
    encode_cursor,
    stored_time,
)
from aftercare.domain.ports import TicketNotFound
from aftercare.domain.support import DeviceNotFound, DeviceStatus, Support
from aftercare.domain.ticket_view import ticket_view
from aftercare.models.api import (
    DiagnosticsList,
    Me,
    StartDiagnostic,
    Thing,
    TicketRow,
    TicketView,
)
from aftercare.models.diagnostics import DiagnosticRecord
from aftercare.models.dispatch_api import Region
from aftercare.models.ids import RequestId, TicketId
from aftercare.models.tickets import Priority, TicketStatus
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

app = http_api(public_paths=["/openapi.json"])
# Route groups, each imported and installed by the first request to one of its routes (and all
# of them for the OpenAPI document): a start defines only the models of the routes below.
app.include_on_first_use(
    "aftercare.api.field_routes",  # slots, bookings, engineers
    "aftercare.api.raised_routes",  # raise, classify, symptoms, tasks
    "aftercare.api.guide_routes",  # guides, self-service, assist
    "aftercare.api.incident_routes",  # fleet incidents
)

OPENAPI_FILE = Path(__file__).with_name("openapi.json")


class Settings(EnvSettings):
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up
    diagnostics_timeout_s: int


@cache
def deps() -> Support:
    settings = load_settings(Settings)  # values come from the environment
    return Support(
        tickets=DynamoTicketStore(
            tickets_table=settings.tickets_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
            inventory_table=settings.inventory_table,
        ),
        devices=DynamoDeviceDirectory(devices_table=settings.devices_table),
        diagnostics=DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        ),
        publisher=IotDataPublisher(endpoint=settings.iot_data_endpoint),
        default_timeout=timedelta(seconds=settings.diagnostics_timeout_s),
    )


@cache
def route_group_settings() -> tuple[FieldSettings, RaisedSettings, SelfServiceSettings]:
    return (
        load_settings(FieldSettings),
        load_settings(RaisedSettings),
        load_settings(SelfServiceSettings),
    )


def caller() -> Caller:
    return current_caller(app)


# --------------------------------------------------------------------------- routes


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        body=OPENAPI_FILE.read_text(encoding="utf-8"),
    )


@app.get(
    "/me",
    summary="Who the token belongs to",
    tags=["access"],
    responses=documented(200, "the caller"),
)
def me() -> Me:
    who = caller()
    return Me(username=who.username, groups=sorted(who.groups), customer_id=who.customer_id)


NEXT_CURSOR_HEADER = "X-Next-Cursor"
PAGE_DEFAULT = 200  # the listing's size before it was paged: old clients see no change


def paged(responses: dict[int, Any]) -> dict[int, Any]:
    responses[200]["headers"] = {
        NEXT_CURSOR_HEADER: {
            "description": "present when there are more: pass it as `cursor` for the next page",
            "schema": {"type": "string"},
        }
    }
    return responses


@app.get(
    "/tickets",
    summary="List tickets, newest first, one page at a time",
    description=(
        "Returns up to `limit` tickets (a JSON array). When more match, the response carries "
        f"`{NEXT_CURSOR_HEADER}`: an opaque cursor to send back as `cursor`, with the same "
        "filters, for the next page. A cursor that was altered or belongs to other "
        "filters is a 400 `invalid_cursor`. Staff see every ticket, a customer only the "
        "tickets opened for them. Narrowing filters (any caller): `priority` (P1-P4), "
        "`region`, `sla_due_before` (resolution SLA due before this instant) and "
        "`updated_since` (changed at or after this instant: poll with the time of the last "
        "poll to get only what changed). Times are RFC 3339 with an offset; one without is a "
        "422."
    ),
    tags=["tickets"],
    responses=paged(documented(200, "one page of the tickets the caller may see", 400)),
)
def list_tickets(  # keyword-only: the resolver passes query parameters by name
    *,
    status: Annotated[TicketStatus | None, Query()] = None,
    thing: Annotated[Thing | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
    region: Annotated[Region | None, Query()] = None,
    sla_due_before: Annotated[AwareDatetime | None, Query()] = None,
    updated_since: Annotated[AwareDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response[list[TicketRow]]:
    status_value = status.value if status else None
    filters = TicketFilters(
        priority=priority.value if priority else None,
        region=region,
        sla_due_before=stored_time(sla_due_before) if sla_due_before else None,
        updated_since=stored_time(updated_since) if updated_since else None,
    )
    after = (
        decode_cursor(cursor, status=status_value, thing=thing, filters=filters) if cursor else None
    )
    page = deps().list_tickets(
        caller(), status=status_value, thing=thing, limit=limit, after=after, filters=filters
    )
    headers = {}
    if page.next_after is not None:
        headers[NEXT_CURSOR_HEADER] = encode_cursor(
            page.next_after, status=status_value, thing=thing, filters=filters
        )
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        body=[TicketRow.of(t) for t in page.tickets],
        headers=headers,
    )


@app.get(
    "/tickets/<ticket_id>",
    summary="A ticket with occurrences, parts lines, timeline and diagnostics",
    tags=["tickets"],
    responses=documented(200, "the ticket"),
)
def show_ticket(ticket_id: Annotated[TicketId, PathParam()]) -> TicketView:
    detail, diagnostics = deps().ticket(caller(), ticket_id)
    return ticket_view(detail, diagnostics)


@app.get(
    "/tickets/<ticket_id>/diagnostics",
    summary="The diagnostics run on a ticket",
    tags=["diagnostics"],
    responses=documented(200, "the ticket's diagnostics, oldest first"),
)
def ticket_diagnostics(ticket_id: Annotated[TicketId, PathParam()]) -> DiagnosticsList:
    return DiagnosticsList(
        ticket_id=ticket_id, diagnostics=deps().diagnostics_of(caller(), ticket_id)
    )


@app.post(
    "/tickets/<ticket_id>/diagnostics",
    summary="Run a diagnostic routine on the ticket's device (engineers)",
    tags=["diagnostics"],
    status_code=HTTPStatus.ACCEPTED,
    responses=documented(202, "the request, pending until the device answers", 400, 409, 502),
)
def start_diagnostic(
    ticket_id: Annotated[TicketId, PathParam()], body: StartDiagnostic
) -> DiagnosticRecord:
    record = deps().start(
        caller(),
        ticket_id,
        routine=body.routine.value if body.routine else None,
        params=body.params,
        timeout=timedelta(seconds=body.timeout_s) if body.timeout_s else None,
        now=datetime.now(UTC),
    )
    metrics.add_metric(name="DiagnosticRequested", unit=MetricUnit.Count, value=1)
    logger.info("diagnostic requested", extra={"request_id": record.request_id})
    return record


@app.get(
    "/diagnostics/<request_id>",
    summary="A diagnostic's status and result",
    tags=["diagnostics"],
    responses=documented(200, "the diagnostic"),
)
def show_diagnostic(request_id: Annotated[RequestId, PathParam()]) -> DiagnosticRecord:
    return deps().diagnostic(caller(), request_id)


@app.get(
    "/devices/<thing>",
    summary="A device's last-seen status and its tickets",
    tags=["devices"],
    responses=documented(200, "the device"),
)
def show_device(thing: Annotated[Thing, PathParam()]) -> DeviceStatus:
    return deps().device(caller(), thing)


# --------------------------------------------------------------------------- errors


map_errors(
    app,
    {
        (TicketNotFound, DiagnosticNotFound, DeviceNotFound): (HTTPStatus.NOT_FOUND, "not_found"),
        InvalidCursor: (HTTPStatus.BAD_REQUEST, "invalid_cursor"),
    },
)


@app.exception_handler(TicketNotActive)
def not_active(exc: TicketNotActive) -> Response[str]:
    metrics.add_metric(name="DiagnosticsSkippedTicketClosed", unit=MetricUnit.Count, value=1)
    logger.info("diagnostic refused: ticket not active", extra={"ticket_id": exc.ticket_id})
    return error(HTTPStatus.CONFLICT, "ticket_not_active", str(exc))


@app.exception_handler(PublishFailed)
def unreachable(exc: PublishFailed) -> Response[str]:
    logger.error("diagnostics publish failed", extra={"error": str(exc)})
    return error(HTTPStatus.BAD_GATEWAY, "publish_failed", str(exc))


# --------------------------------------------------------------------------- entry point


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    route_group_settings()  # ...the route groups' too, before their routes are imported
    return app.resolve(event, context)

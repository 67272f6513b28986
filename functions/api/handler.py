"""ServiceApi: the support HTTP API (API Gateway HTTP API, JWT authorizer `CognitoJwt`).

Routes are thin: parse (Powertools validates against the annotations), one `Support` call, a
view. Errors map to JSON `{"reason", "message"}` in one place (the exception handlers below).
The OpenAPI document is generated from this module (`openapi_document()`), committed as
`openapi.json` beside it and served, unauthenticated, at `GET /openapi.json`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

from aftercare.adapters.diagnostics import (
    DynamoDeviceDirectory,
    DynamoDiagnosticsStore,
    IotDataPublisher,
)
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.domain.access import Caller, Forbidden, caller_from_claims
from aftercare.domain.diagnostics import (
    DiagnosticNotFound,
    DiagnosticRecord,
    PublishFailed,
    TicketNotActive,
)
from aftercare.domain.ports import TicketNotFound
from aftercare.domain.support import DeviceNotFound, DeviceStatus, Support
from aftercare.domain.tickets import TicketStatus
from aftercare.models.api import (
    DiagnosticsList,
    ErrorBody,
    Me,
    RequestId,
    StartDiagnostic,
    Thing,
    TicketId,
    TicketRow,
    TicketView,
)
from aftercare.models.strict_json import MALFORMED_JSON, ContentRejected, loads_strict
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic_settings import BaseSettings

logger = Logger()
metrics = Metrics()
tracer = Tracer()


class Resolver(APIGatewayHttpResolver):
    """Path parameters decoded, as in API Gateway's `pathParameters`: Powertools matches the
    raw (percent-encoded) path, so a thing named `a:b` would otherwise arrive as `a%3Ab`."""

    def _convert_matches_into_route_keys(self, match: re.Match[str]) -> dict[str, str]:
        return {key: unquote(value) for key, value in match.groupdict().items()}


# Bodies go through the one strict decoder: deep nesting, unstorable numbers, NaN/Infinity and
# duplicate keys are a 400/422 with a reason (the `ContentRejected` handler), never a 500.
app = Resolver(enable_validation=True, json_body_deserializer=loads_strict)

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
API_TITLE = "Aftercare support API"
API_VERSION = "1.0.0"
UNAUTHORIZED_SCHEMA = {"type": "object", "properties": {"message": {"type": "string"}}}


def documented(success: int, description: str, *codes: int) -> dict[int, Any]:
    """OpenAPI responses: the route's return model on `success`, ErrorBody on the error codes."""
    meanings = {
        400: "the body is not UTF-8 JSON, or JSON this API refuses (see `reason`)",
        403: "the caller's groups do not allow this",
        404: "no such resource, or not visible to the caller",
        409: "the ticket is not active",
        422: "the request does not match this document",
        502: "the request could not be handed to the device",
    }
    responses: dict[int, Any] = {
        success: {"description": description},
        401: {
            "description": "no or invalid token (API Gateway's JWT authorizer)",
            "content": {"application/json": {"schema": UNAUTHORIZED_SCHEMA}},
        },
    }
    for code in (403, 404, 422, *codes):
        responses[code] = {
            "description": meanings[code],
            "content": {"application/json": {"model": ErrorBody}},
        }
    return responses


class Settings(BaseSettings):
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up
    diagnostics_timeout_s: int


@cache
def support() -> Support:
    settings = Settings()  # values come from the environment
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


def caller() -> Caller:
    return caller_from_claims(app.current_event.request_context.authorizer.jwt_claim)


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


@app.get(
    "/tickets",
    summary="List tickets, newest first",
    tags=["tickets"],
    responses=documented(200, "tickets the caller may see"),
)
def list_tickets(
    status: Annotated[TicketStatus | None, Query()] = None,
    thing: Annotated[Thing | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[TicketRow]:
    tickets = support().list_tickets(
        caller(), status=status.value if status else None, thing=thing, limit=limit
    )
    return [TicketRow.of(t) for t in tickets]


@app.get(
    "/tickets/<ticket_id>",
    summary="A ticket with occurrences, parts lines, timeline and diagnostics",
    tags=["tickets"],
    responses=documented(200, "the ticket"),
)
def show_ticket(ticket_id: Annotated[TicketId, PathParam()]) -> TicketView:
    detail, diagnostics = support().ticket(caller(), ticket_id)
    return TicketView(
        **detail.ticket.model_dump(),
        occurrence_history=detail.occurrences,
        timeline=detail.timeline,
        diagnostics=diagnostics,
    )


@app.get(
    "/tickets/<ticket_id>/diagnostics",
    summary="The diagnostics run on a ticket",
    tags=["diagnostics"],
    responses=documented(200, "the ticket's diagnostics, oldest first"),
)
def ticket_diagnostics(ticket_id: Annotated[TicketId, PathParam()]) -> DiagnosticsList:
    return DiagnosticsList(
        ticket_id=ticket_id, diagnostics=support().diagnostics_of(caller(), ticket_id)
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
    record = support().start(
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
    return support().diagnostic(caller(), request_id)


@app.get(
    "/devices/<thing>",
    summary="A device's last-seen status and its tickets",
    tags=["devices"],
    responses=documented(200, "the device"),
)
def show_device(thing: Annotated[Thing, PathParam()]) -> DeviceStatus:
    return support().device(caller(), thing)


# --------------------------------------------------------------------------- errors


def error(status: HTTPStatus, reason: str, message: str, **extra: Any) -> Response[str]:
    body = ErrorBody(reason=reason, message=message, **extra)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
    )


@app.exception_handler(RequestValidationError)
def invalid_request(exc: RequestValidationError) -> Response[str]:
    detail = [
        {"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    return error(
        HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", "invalid request", detail=detail
    )


@app.exception_handler(UnicodeDecodeError)
def undecodable(exc: UnicodeDecodeError) -> Response[str]:
    return error(HTTPStatus.BAD_REQUEST, "malformed_body", "the body is not UTF-8 JSON")


@app.exception_handler(ContentRejected)
def rejected_content(exc: ContentRejected) -> Response[str]:
    # The API's own vocabulary: a body we cannot read is `malformed_body`, one we read but
    # cannot accept (numbers DynamoDB cannot store) is a `validation_error`.
    if exc.reason == MALFORMED_JSON:
        status, reason = HTTPStatus.BAD_REQUEST, "malformed_body"
    else:
        status, reason = HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error"
    detail = [{"loc": ["body"], "msg": exc.detail, "type": exc.reason}]
    return error(status, reason, exc.detail, detail=detail)


@app.exception_handler([TicketNotFound, DiagnosticNotFound, DeviceNotFound])
def not_found(exc: LookupError) -> Response[str]:
    return error(HTTPStatus.NOT_FOUND, "not_found", str(exc))


@app.exception_handler(Forbidden)
def forbidden(exc: Forbidden) -> Response[str]:
    return error(HTTPStatus.FORBIDDEN, "forbidden", str(exc))


@app.exception_handler(TicketNotActive)
def not_active(exc: TicketNotActive) -> Response[str]:
    return error(HTTPStatus.CONFLICT, "ticket_not_active", str(exc))


@app.exception_handler(PublishFailed)
def unreachable(exc: PublishFailed) -> Response[str]:
    logger.error("diagnostics publish failed", extra={"error": str(exc)})
    return error(HTTPStatus.BAD_GATEWAY, "publish_failed", str(exc))


@app.not_found
def no_route(exc: Exception) -> Response[str]:
    return error(HTTPStatus.NOT_FOUND, "no_route", "no such route")


# --------------------------------------------------------------------------- entry points


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, generated from the routes and models above."""
    text = app.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "Tickets, devices and remote diagnostics. Send a Cognito ID token as "
            "`Authorization: Bearer <token>`; engineers and managers see every ticket, "
            "customers only tickets on their own devices."
        ),
        security_schemes={"CognitoJwt": HTTPBearer(bearerFormat="JWT")},
        security=[{"CognitoJwt": []}],
    )
    return dict(json.loads(text))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


def write_openapi() -> None:
    """Regenerate the committed document: `python functions/api/handler.py`."""
    OPENAPI_FILE.write_text(json.dumps(openapi_document(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_openapi()

"""Owners API (HTTP API `ServiceApi`, JWT authorizer): customers register, hand over and list
their devices.

    POST /devices/claim              {"serial" | "thing", "code"} -> 201 the claimed device
    POST /devices/{thing}/transfer   {"to_customer"} | {"to_email"} | {"release": true} -> 200
    GET  /me/devices                 the caller's devices: warranty, last seen, open tickets,
                                     the maintenance advice that still holds
    GET  /devices/{thing}/telemetry  a device's latest readings and daily temperature series
                                     (staff: any device; a customer: their own, else 404)

A function of its own on the same API (its role writes the claims list, the registry's owner
and the customers' device lists; nothing else does), built from the shared resolver. Errors:
403 not a customer, 404 unknown device (or one the caller does not own), 409
`already_claimed`, 403 `wrong_claim_code` (with the attempts left), 429 `claim_locked`,
422 `unknown_customer` / `same_owner` / `validation_error`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aftercare.adapters.health import DynamoHealthReader
from aftercare.adapters.ownership import DynamoOwnershipStore
from aftercare.adapters.ticket_reads import DynamoTicketReader
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, error, map_errors
from aftercare.api.resolver import http_api
from aftercare.domain.access import Caller
from aftercare.domain.device_telemetry import (
    MAX_DAYS,
    DeviceTelemetry,
    InvalidRange,
    device_telemetry,
)
from aftercare.domain.handover import TicketHandover
from aftercare.domain.maintenance import load_maintenance_rules
from aftercare.domain.ownership import (
    AlreadyClaimed,
    ClaimLocked,
    ClaimNotFound,
    OwnedDeviceNotFound,
    Ownership,
    SameOwner,
    WrongClaimCode,
    load_ownership_policy,
)
from aftercare.domain.ports.ownership import NotTheOwner, UnknownCustomer
from aftercare.models.api import Thing
from aftercare.models.ownership import (
    ClaimedDevice,
    ClaimRequest,
    MyDevice,
    TransferOutcome,
    TransferRequest,
)
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point, on_first_use
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = http_api()


class Settings(EnvSettings):
    claims_table: str
    devices_table: str
    customers_table: str
    tickets_table: str
    health_table: str
    inventory_table: str


@cache
def deps() -> Ownership:
    settings = load_settings(Settings)  # values come from the environment
    return Ownership(
        store=DynamoOwnershipStore(
            claims_table=settings.claims_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
        ),
        tickets=DynamoTicketReader(tickets_table=settings.tickets_table),
        health=DynamoHealthReader(health_table=settings.health_table),
        rules=load_maintenance_rules(),
        policy=load_ownership_policy(),
        handover=on_first_use(lambda: ticket_handover(settings)),
    )


def ticket_handover(settings: Settings) -> TicketHandover:
    """The ticket store a transfer closes the old owner's tickets with. Built by the first
    transfer: claims and listings never write tickets, so a start does not load the ticket
    writes (and the escalation and dispatch rules under them) for them."""
    from aftercare.adapters.dynamodb import DynamoTicketStore

    return DynamoTicketStore(
        tickets_table=settings.tickets_table,
        devices_table=settings.devices_table,
        customers_table=settings.customers_table,
        inventory_table=settings.inventory_table,
    )


def caller() -> Caller:
    return current_caller(app)


@app.post(
    "/devices/claim",
    summary="Register a device to the calling customer with the code printed on it",
    tags=["devices"],
    status_code=HTTPStatus.CREATED,
    responses=documented(201, "the device, now the caller's, with its warranty", 409, 429),
)
def claim_device(body: ClaimRequest) -> ClaimedDevice:
    claimed = deps().claim(
        caller(), serial=body.serial, thing=body.thing, code=body.code, now=datetime.now(UTC)
    )
    metrics.add_metric(name="DeviceClaimed", unit=MetricUnit.Count, value=1)
    logger.info("device claimed", extra={"thing": claimed.thing})
    return claimed


@app.post(
    "/devices/<thing>/transfer",
    summary="Hand a device to another customer, or release it with a new claim code",
    tags=["devices"],
    responses=documented(200, "who has it now (a released device's new code, once)"),
)
def transfer_device(thing: Annotated[Thing, PathParam()], body: TransferRequest) -> TransferOutcome:
    outcome = deps().transfer(
        caller(), thing, to_customer=body.to_customer, to_email=body.to_email, now=datetime.now(UTC)
    )
    metrics.add_metric(name="DeviceTransferred", unit=MetricUnit.Count, value=1)
    logger.info(
        "device transferred",
        extra={"thing": thing, "released": body.release, "closed": outcome.closed_tickets},
    )
    return outcome


@app.get(
    "/me/devices",
    summary="The calling customer's devices: warranty, last seen, open tickets, advice",
    tags=["devices"],
    responses=documented(200, "the caller's devices, by thing name"),
)
def my_devices() -> list[MyDevice]:
    return deps().my_devices(caller(), datetime.now(UTC))


@app.get(
    "/devices/<thing>/telemetry",
    summary="A device's latest readings and daily mean temperatures, for a chart",
    description=(
        "`latest`: the newest applied report's values (null: never reported). `daily`: the "
        "daily mean temperature of each UTC day kept (the last 7, maintenance.yaml "
        "history_days), oldest first, within `from`/`to` (inclusive), the newest `limit`. "
        "Per-report readings are not stored. Staff: any device; a customer: their own (any "
        "other reads as 404 not_found). 422 `invalid_range` when `to` is before `from`."
    ),
    tags=["devices"],
    responses=documented(200, "the device's telemetry"),
)
def telemetry_of(
    thing: Annotated[Thing, PathParam()],
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DAYS)] = MAX_DAYS,
) -> DeviceTelemetry:
    d = deps()
    return device_telemetry(d.store, d.health, caller(), thing, first=first, last=last, limit=limit)


@app.exception_handler(WrongClaimCode)
def wrong_code(exc: WrongClaimCode) -> Response[str]:
    metrics.add_metric(name="DeviceClaimWrongCode", unit=MetricUnit.Count, value=1)
    return error(HTTPStatus.FORBIDDEN, "wrong_claim_code", str(exc))


@app.exception_handler(ClaimLocked)
def locked(exc: ClaimLocked) -> Response[str]:
    metrics.add_metric(name="DeviceClaimLocked", unit=MetricUnit.Count, value=1)
    return error(HTTPStatus.TOO_MANY_REQUESTS, "claim_locked", str(exc))


map_errors(
    app,
    {
        (ClaimNotFound, OwnedDeviceNotFound, NotTheOwner): (HTTPStatus.NOT_FOUND, "not_found"),
        AlreadyClaimed: (HTTPStatus.CONFLICT, "already_claimed"),
        UnknownCustomer: (HTTPStatus.UNPROCESSABLE_ENTITY, "unknown_customer"),
        SameOwner: (HTTPStatus.UNPROCESSABLE_ENTITY, "same_owner"),
        InvalidRange: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_range"),
    },
)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

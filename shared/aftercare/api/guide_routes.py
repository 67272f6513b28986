"""Troubleshooting guides, the customer's "I followed the guide" (self-service checked by the
device itself) and the answer service (`POST /assist`).

A Powertools Router included into the support API's one resolver (`functions/api/handler.py`
calls `install`), so these routes share its caller middleware, strict bodies, error body and
OpenAPI document. Errors map to HTTP here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from aftercare.adapters.diagnostics import (
    DynamoDeviceDirectory,
    DynamoDiagnosticsStore,
    IotDataPublisher,
)
from aftercare.api.caller import CallerRouter
from aftercare.api.errors import documented, map_errors
from aftercare.api.route_settings import SelfServiceSettings
from aftercare.domain.access import Caller
from aftercare.domain.assist import AssistAnswer, Assistant, documents, load_faqs
from aftercare.domain.diagnostics_records import VerificationPending
from aftercare.domain.guides import NoGuide, UnknownCode, load_guides
from aftercare.domain.ports import CommandPublisher, DeviceDirectory, TicketNotFound
from aftercare.domain.rules import load_catalog
from aftercare.domain.self_service import (
    NoStepRoutine,
    NotSelfServiceable,
    SelfServiceStore,
    run_guide_step,
    start_self_service,
)
from aftercare.domain.support import DeviceNotFound
from aftercare.domain.tickets import Ticket
from aftercare.models.guides import (
    AskAssistant,
    GuideLanguage,
    GuideStepStarted,
    GuideView,
    SelfServiceStarted,
)
from aftercare.models.ids import FaultCode, TicketId
from aftercare.observability import logger, metrics
from aftercare.settings import load_settings

router = CallerRouter("guide_routes_app")


def caller() -> Caller:
    return router.caller()


Lang = Annotated[str, Query(pattern=r"^(en|zh|zh-CN)$", description="en (default) or zh-CN")]
Model = Annotated[str, Query(pattern=r"^[A-Z0-9-]{1,32}$", description="the product model")]


class CodeRequired(ValueError):
    """GET /guides without a code."""


def guide_for(code: str, model: str | None, lang: str) -> GuideView:
    """The guide for `code` (the model's own when it has one) in `lang`."""
    if load_catalog().lookup(code) is None:
        raise UnknownCode(f"{code} is not a catalog code (GET /symptoms lists them)")
    book = load_guides()
    guide = book.find(code, model)
    if guide is None:
        raise NoGuide(code, model)
    return guide.view(GuideLanguage.parse(lang), book.version)


@router.get(
    "/guides",
    summary="The troubleshooting guide for a fault code (and product model), in en or zh-CN",
    description=(
        "A model's own guide overrides the code's generic one. 404 `no_guide` when the code "
        "has none; 422 `unknown_code` for a code the catalog does not have, `code_required` "
        "without one."
    ),
    tags=["guides"],
    responses=documented(200, "the guide", 404, 422),
)
def guide_route(
    code: Annotated[FaultCode | None, Query(description="a catalog code (required)")] = None,
    model: Model | None = None,
    lang: Lang = "en",
) -> GuideView:
    caller().require_reader()
    if code is None:
        raise CodeRequired("the query parameter `code` is required (GET /symptoms lists codes)")
    return guide_for(code, model, lang)


@dataclass(frozen=True)
class SelfServiceDeps:
    diagnostics: SelfServiceStore
    devices: DeviceDirectory
    publisher: CommandPublisher
    timeout: timedelta


@cache
def self_service_deps() -> SelfServiceDeps:
    settings = load_settings(SelfServiceSettings)  # values come from the environment
    return SelfServiceDeps(
        diagnostics=DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        ),
        devices=DynamoDeviceDirectory(devices_table=settings.devices_table),
        publisher=IotDataPublisher(endpoint=settings.iot_data_endpoint),
        timeout=timedelta(seconds=settings.diagnostics_timeout_s),
    )


def _ticket_for(
    who: Caller, deps: SelfServiceDeps, ticket_id: str
) -> tuple[Ticket, dict[str, Any] | None]:
    """The ticket and its device, for staff or the device's owner (404 for anyone else)."""
    ticket = deps.diagnostics.load_ticket(ticket_id)
    device = deps.devices.get(ticket.thing)
    if not (who.staff or (device is not None and who.may_see(device.get("customer_id")))):
        raise TicketNotFound(ticket_id)
    return ticket, device


@router.post(
    "/tickets/<ticket_id>/self-service",
    summary="I followed the guide: ask the device to confirm the fix (owner customer, staff)",
    description=(
        "Records the attempt on the ticket and sends the guide's verification routine to the "
        "device (202). The device answers now, or when it reconnects, until `expires_at`: "
        "fault gone -> the ticket resolves with `resolution: self_service` and its held parts "
        "are released; fault still there, or no answer in time -> flagged "
        "`needs_onsite_dispatch`. 404 for a ticket the caller may not see; 409 "
        "`ticket_not_active`, `not_self_serviceable`, `verification_pending`; 502 "
        "`publish_failed`."
    ),
    tags=["guides"],
    status_code=HTTPStatus.ACCEPTED,
    responses=documented(202, "the device is asked to confirm", 409, 502),
)
def self_service_route(ticket_id: Annotated[TicketId, PathParam()]) -> SelfServiceStarted:
    who = caller()
    who.require_reader()
    deps = self_service_deps()
    ticket, device = _ticket_for(who, deps, ticket_id)
    record = start_self_service(
        ticket,
        deps.diagnostics.for_ticket(ticket_id),
        guides=load_guides(),
        store=deps.diagnostics,
        publisher=deps.publisher,
        actor=who.actor,
        now=datetime.now(UTC),
        timeout=deps.timeout,
    )
    metrics.add_metric(name="SelfServiceAttempted", unit=MetricUnit.Count, value=1)
    logger.info("self-service verification requested", extra={"request_id": record.request_id})
    return SelfServiceStarted(
        ticket_id=ticket_id,
        attempt=ticket.self_service_attempts + 1,
        request_id=record.request_id,
        routine=record.routine,
        status="waiting_for_device",
        expires_at=record.expires_at,
        device_last_seen=last_seen(device, ticket),
    )


@router.post(
    "/tickets/<ticket_id>/guide-steps/<step>",
    summary="Run a guide step's device routine for the customer (owner customer, staff)",
    description=(
        "A step of the ticket's self-service guide may name a safe device routine (e.g. "
        "`reset_component`: restart the network module). It is sent to the device through the "
        "diagnostics round trip (202; purpose `guide_step`; once per step and self-service "
        "attempt: a repeat returns the same request). Its answer is recorded on the ticket's "
        "timeline and changes nothing else: the verification after `POST "
        "/tickets/{id}/self-service` decides whether the fault is gone. 404 for a ticket the "
        "caller may not see; 409 `ticket_not_active`, `not_self_serviceable`, "
        "`no_step_routine` (no such step, or it runs nothing); 502 `publish_failed`."
    ),
    tags=["guides"],
    status_code=HTTPStatus.ACCEPTED,
    responses=documented(202, "the device is asked to run the step's routine", 409, 502),
)
def guide_step_route(
    ticket_id: Annotated[TicketId, PathParam()],
    step: Annotated[int, PathParam(ge=1, le=50)],
) -> GuideStepStarted:
    who = caller()
    who.require_reader()
    deps = self_service_deps()
    ticket, _device = _ticket_for(who, deps, ticket_id)
    record = run_guide_step(
        ticket,
        step,
        guides=load_guides(),
        store=deps.diagnostics,
        publisher=deps.publisher,
        actor=who.actor,
        now=datetime.now(UTC),
        timeout=deps.timeout,
    )
    metrics.add_metric(name="GuideStepRun", unit=MetricUnit.Count, value=1)
    return GuideStepStarted(
        ticket_id=ticket_id,
        step=step,
        routine=record.routine,
        request_id=record.request_id,
        expires_at=record.expires_at,
    )


def last_seen(device: dict[str, Any] | None, ticket: Ticket) -> datetime:
    """The newest of the device's last diagnostics answer and the ticket's last report."""
    heard = [ticket.last_seen]
    if device and device.get("last_seen_at"):
        heard.append(datetime.fromisoformat(str(device["last_seen_at"])))
    return max(heard)


@cache
def assistant() -> Assistant:
    """The answer service, its index built on the first question this process is asked (SQLite
    is imported then too: the support API's other routes never pay for it)."""
    from aftercare.adapters.assist_index import SqliteFtsIndex

    guides, faqs, catalog = load_guides(), load_faqs(), load_catalog()
    return Assistant(SqliteFtsIndex(documents(guides, faqs, catalog)), guides, faqs, catalog)


@router.post(
    "/assist",
    summary="Answers to a question from the guides and the FAQ, with a confidence",
    description=(
        "Up to three answers (guide steps or FAQ answers) in `lang`, best first, each with a "
        "confidence (0-1: how much of the question it covers). `offer_ticket` is true when none "
        "reaches 0.5: the app offers to open a ticket (`suggested_symptom` as its symptom). With "
        "`thing` (a device the caller may see, else 404) only guides for its model are given."
    ),
    tags=["guides"],
    responses=documented(200, "the answers", 422),
)
def assist_route(body: AskAssistant) -> AssistAnswer:
    who = caller()
    who.require_reader()
    model = None
    if body.thing is not None:
        device = self_service_deps().devices.get(body.thing)
        if device is None or not who.may_see(device.get("customer_id")):
            raise DeviceNotFound(body.thing)
        model = str(device.get("model") or "") or None
    answer = assistant().ask(body.question, body.lang, model)
    metrics.add_metric(
        name="AssistOfferedTicket" if answer.offer_ticket else "AssistAnswered",
        unit=MetricUnit.Count,
        value=1,
    )
    return answer


def install(app: ApiGatewayResolver) -> None:
    """Include the routes and map their errors on `app`."""
    app.include_router(router)
    map_errors(
        app,
        {
            NoGuide: (HTTPStatus.NOT_FOUND, "no_guide"),
            UnknownCode: (HTTPStatus.UNPROCESSABLE_ENTITY, "unknown_code"),
            CodeRequired: (HTTPStatus.UNPROCESSABLE_ENTITY, "code_required"),
            NotSelfServiceable: (HTTPStatus.CONFLICT, "not_self_serviceable"),
            NoStepRoutine: (HTTPStatus.CONFLICT, "no_step_routine"),
            VerificationPending: (HTTPStatus.CONFLICT, "verification_pending"),
        },
    )

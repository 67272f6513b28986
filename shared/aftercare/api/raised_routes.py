"""Routes through which people raise tickets (customers, and agents for customers), support
classifies free-text tickets and works the callback tasks the channel policy creates, and the
symptom list customers choose from.

A Powertools Router included into the support API's one resolver (`functions/api/handler.py`
calls `install`), so these routes share its caller middleware, strict bodies, error body and
OpenAPI document. Errors map to HTTP here, once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.metrics import MetricUnit

from aftercare.adapters.diagnostics import (
    DynamoDeviceDirectory,
    DynamoDiagnosticsStore,
    IotDataPublisher,
)
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.tasks import DynamoTaskStore
from aftercare.api.caller import CallerRouter
from aftercare.api.errors import documented, map_errors
from aftercare.api.route_settings import RaisedSettings
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.channels import load_channel_policy
from aftercare.domain.classification import AlreadyClassified, ClassifyDeps, classify_ticket
from aftercare.domain.guides import load_guides
from aftercare.domain.intake import IntakeRules
from aftercare.domain.ports import CodeAlreadyOpen, TaskAlreadyDone, TaskNotFound
from aftercare.domain.raising import (
    ChannelNotAllowed,
    CustomerMismatch,
    IdempotencyKeyReused,
    RaiseDeps,
    RaiseOutcome,
    RaiseRequest,
    UnknownSymptom,
    raise_ticket,
    symptom_list,
)
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.models.guides import GuideLanguage, GuideView
from aftercare.models.ids import TicketId
from aftercare.models.raised_api import (
    IDEMPOTENCY_KEY_PATTERN,
    ClassifyTicket,
    CompleteTask,
    RaisedTicket,
    RaiseTicket,
    Symptom,
)
from aftercare.models.tasks import Task, TaskStatus
from aftercare.models.tickets import TicketRecord
from aftercare.observability import logger, metrics
from aftercare.settings import load_settings

router = CallerRouter("raised_routes_app")

TaskId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,80}$")]
Lang = Annotated[str, Query(pattern=r"^(en|zh|zh-CN)$")]
Model = Annotated[str, Query(pattern=r"^[A-Z0-9-]{1,32}$")]


@cache
def raised_deps() -> tuple[RaiseDeps, ClassifyDeps]:
    settings = load_settings(RaisedSettings)  # values come from the environment
    tickets = DynamoTicketStore(
        tickets_table=settings.tickets_table,
        devices_table=settings.devices_table,
        customers_table=settings.customers_table,
        inventory_table=settings.inventory_table,
    )
    rules = IntakeRules(
        catalog=load_catalog(),
        policy=load_policy(),
        repeat_window=timedelta(days=settings.repeat_window_days),
        hold_duration=timedelta(hours=settings.hold_hours),
    )
    raising = RaiseDeps(
        tickets=tickets,
        devices=DynamoDeviceDirectory(devices_table=settings.devices_table),
        tasks=DynamoTaskStore(tickets_table=settings.tickets_table),
        rules=rules,
        channels=load_channel_policy(),
    )
    classifying = ClassifyDeps(
        tickets=tickets,
        diagnostics=DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        ),
        publisher=IotDataPublisher(endpoint=settings.iot_data_endpoint),
        rules=rules,
        timeout=timedelta(seconds=settings.diagnostics_timeout_s),
    )
    return raising, classifying


def caller() -> Caller:
    return router.caller()


def _require_staff(who: Caller) -> None:
    if not who.staff:
        raise Forbidden("only support staff work tasks")


@router.post(
    "/tickets",
    summary="Raise a ticket for a device (customers: their own; agents: for a customer)",
    description=(
        "201 `opened` with the new ticket; 200 `already_being_handled` when the device already "
        "has an active ticket for that symptom (the report is added to it as an occurrence); "
        "200 `duplicate_request` for a retry with the same `Idempotency-Key` and body (the "
        "first answer's ticket). The same key with another body is 409 `idempotency_key_reused`; "
        "a device that does not exist or is another customer's is 404; a customer claiming an "
        "agent's channel is 422 `channel_not_allowed`; an unknown symptom code 422 "
        "`unknown_symptom`."
    ),
    tags=["tickets"],
    status_code=HTTPStatus.CREATED,
    responses=documented(201, "the ticket was opened", 400, 409, 422)
    | {
        200: {
            "description": "already_being_handled, or duplicate_request (a retried key)",
            "content": {"application/json": {"model": RaisedTicket}},
        }
    },
)
def raise_route(
    body: RaiseTicket,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="idempotency-key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="the same key on every retry of one request (8-128 characters)",
        ),
    ] = None,
) -> Response[RaisedTicket]:
    request = RaiseRequest(
        thing=body.device,
        symptom=body.symptom,
        description=body.description,
        channel=body.channel.channel,
        preferred_contact=body.preferred_contact,
        for_customer=body.for_customer,
    )
    raising, _ = raised_deps()
    raised = raise_ticket(caller(), request, key=idempotency_key, deps=raising, now=_now())
    metrics.add_metric(name=f"TicketRaised_{raised.outcome.value}", unit=MetricUnit.Count, value=1)
    logger.info(
        "ticket raised",
        extra={"outcome": raised.outcome.value, "ticket_id": raised.ticket.ticket_id},
    )
    view = RaisedTicket(
        outcome=raised.outcome.value,
        ticket_id=raised.ticket.ticket_id,
        ticket=TicketRecord.model_validate(raised.ticket.model_dump()),
        callback=raised.callback,
        guide=guide_offered(raised.ticket.fault_code, raised.ticket.model, body.lang),
    )
    status = HTTPStatus.CREATED if raised.outcome is RaiseOutcome.OPENED else HTTPStatus.OK
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=view)


@router.post(
    "/tickets/<ticket_id>/classify",
    summary="Give an unclassified ticket a catalog code (staff): parts, routine, SLA",
    tags=["tickets"],
    responses=documented(200, "the classified ticket", 403, 409, 422),
)
def classify_route(ticket_id: Annotated[TicketId, PathParam()], body: ClassifyTicket) -> Any:
    _, classifying = raised_deps()
    done = classify_ticket(caller(), ticket_id, body.code, deps=classifying, now=_now())
    metrics.add_metric(name="TicketClassified", unit=MetricUnit.Count, value=1)
    return TicketRecord.model_validate(done.ticket.model_dump())


@router.get(
    "/symptoms",
    summary="The symptom list customers choose from (catalog codes, named in en or zh-CN)",
    tags=["tickets"],
    responses=documented(200, "the symptoms"),
)
def symptoms_route(lang: Lang = "en", model: Model | None = None) -> list[Symptom]:
    caller().require_reader()
    return symptom_list(load_catalog(), lang, model)


@router.get(
    "/tasks",
    summary="Staff tasks tickets created (VIP callbacks), oldest due first",
    tags=["tasks"],
    responses=documented(200, "the tasks", 403),
)
def tasks_route(status: Annotated[TaskStatus | None, Query()] = None) -> list[Task]:
    _require_staff(caller())
    raising, _ = raised_deps()
    return raising.tasks.list_tasks(status.value if status else None)


@router.post(
    "/tasks/<task_id>/done",
    summary="Mark a task done (staff); its ticket's timeline says so",
    tags=["tasks"],
    responses=documented(200, "the task, done", 403, 409),
)
def complete_task_route(task_id: TaskId, body: CompleteTask) -> Task:
    who = caller()
    _require_staff(who)
    raising, _ = raised_deps()
    return raising.tasks.complete_task(task_id, by=who.actor, at=_now(), note=body.note)


def guide_offered(code: str, model: str, lang: GuideLanguage) -> GuideView | None:
    """The guide for the ticket's code on its model, in the caller's language, if any."""
    book = load_guides()
    guide = book.find(code, model)
    return guide.view(lang, book.version) if guide is not None else None


def _now() -> datetime:
    return datetime.now(UTC)


def install(app: ApiGatewayResolver) -> None:
    """Include the routes and map their errors on `app`."""
    app.include_router(router)
    map_errors(
        app,
        {
            ChannelNotAllowed: (HTTPStatus.UNPROCESSABLE_ENTITY, "channel_not_allowed"),
            UnknownSymptom: (HTTPStatus.UNPROCESSABLE_ENTITY, "unknown_symptom"),
            CustomerMismatch: (HTTPStatus.UNPROCESSABLE_ENTITY, "customer_mismatch"),
            IdempotencyKeyReused: (HTTPStatus.CONFLICT, "idempotency_key_reused"),
            AlreadyClassified: (HTTPStatus.CONFLICT, "already_classified"),
            CodeAlreadyOpen: (HTTPStatus.CONFLICT, "code_already_open"),
            TaskAlreadyDone: (HTTPStatus.CONFLICT, "task_already_done"),
            TaskNotFound: (HTTPStatus.NOT_FOUND, "not_found"),
        },
    )

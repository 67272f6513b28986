"""AutoDiagnose (TicketsTable stream): the automatic side of remote diagnostics.

- a new ticket whose fault code is marked auto-diagnose: run the catalog's routine, with no
  engineer involved (recorded only if the ticket is still active when the request is written);
- a ticket that became resolved or cancelled: cancel its pending diagnostics and tell the device.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.aws import from_item
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore, IotDataPublisher
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.diagnostics import auto_diagnose, cancel_pending
from aftercare.domain.diagnostics_records import TicketNotActive
from aftercare.domain.tickets import Ticket
from aftercare.observability import logger, metrics, tracer
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = ReportingBatchProcessor(event_type=EventType.DynamoDBStreams)


class Settings(EnvSettings):
    tickets_table: str
    inventory_table: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up
    diagnostics_timeout_s: int


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.store = DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        )
        self.publisher = IotDataPublisher(endpoint=settings.iot_data_endpoint)
        self.timeout = timedelta(seconds=settings.diagnostics_timeout_s)


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> str | None:
    image = record.raw_event["dynamodb"].get("NewImage")
    if not image:
        return None
    ticket = Ticket.model_validate(from_item(image))
    if not ticket.active:
        cancel_stale(ticket)
        return None
    return start_auto(ticket)


def cancel_stale(ticket: Ticket) -> None:
    d = deps()
    cancelled = cancel_pending(d.store, d.publisher, ticket, now=datetime.now(UTC))
    if not cancelled:
        return
    metrics.add_metric(name="DiagnosticsCancelled", unit=MetricUnit.Count, value=len(cancelled))
    logger.info(
        "pending diagnostics cancelled",
        extra={
            "ticket_id": ticket.ticket_id,
            "status": ticket.status.value,
            "request_ids": [r.request_id for r in cancelled],
        },
    )


def start_auto(ticket: Ticket) -> str | None:
    d = deps()
    try:
        started = auto_diagnose(
            d.store, d.publisher, ticket, timeout=d.timeout, now=datetime.now(UTC)
        )
    except TicketNotActive as exc:  # resolved or cancelled after this stream record was written
        metrics.add_metric(name="DiagnosticsSkippedTicketClosed", unit=MetricUnit.Count, value=1)
        logger.info(
            "auto-diagnostic skipped: ticket no longer active",
            extra={"ticket_id": ticket.ticket_id, "status": exc.status.value},
        )
        return None
    if started is None:
        return None
    metrics.add_metric(name="AutoDiagnosticStarted", unit=MetricUnit.Count, value=1)
    logger.info(
        "auto-diagnostic started",
        extra={"ticket_id": ticket.ticket_id, "request_id": started.request_id},
    )
    return started.request_id


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

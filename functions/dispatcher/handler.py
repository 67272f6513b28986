"""Dispatcher (TicketsTable stream): a ticket that needs a visit gets one.

The stream filter passes a ticket's record when it became dispatchable: a new ticket flagged
`needs_onsite_dispatch` (its catalog code always needs a visit), a flagged active ticket with
no dispatch decision yet (diagnostics or a failed remote fix flagged it), a ticket asked to be
dispatched again (`dispatch_state` = wanted: an engineer asked, a backorder arrived), or a visit
that did not fix it (back to `open`, flagged). One domain call per record
(`aftercare.domain.redispatch.dispatch`): P1/VIP tickets get the earliest feasible
visit booked, the others wait for the customer's choice; the decision is written on the ticket,
which stops the filter from passing it again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aftercare.adapters.aws import from_item
from aftercare.adapters.dispatch_deps import dispatch_deps_from_env
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.dispatching import DispatchDeps
from aftercare.domain.redispatch import dispatch
from aftercare.domain.tickets import Ticket
from aftercare.observability import logger, metrics, tracer
from aftercare.runtime import entry_point
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = ReportingBatchProcessor(event_type=EventType.DynamoDBStreams)


def deps() -> DispatchDeps:
    return dispatch_deps_from_env()


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> str | None:
    image = record.raw_event["dynamodb"].get("NewImage")
    if not image:
        return None
    ticket = Ticket.model_validate(from_item(image))
    outcome = dispatch(ticket, deps(), now=datetime.now(UTC))
    if outcome is None:
        return None
    metrics.add_metric(name=f"Dispatch_{outcome.state.value}", unit=MetricUnit.Count, value=1)
    if outcome.slot_taken:
        metrics.add_metric(
            name="DispatchSlotTaken", unit=MetricUnit.Count, value=outcome.slot_taken
        )
    logger.info(
        "ticket dispatched",
        extra={
            "ticket_id": outcome.ticket_id,
            "state": outcome.state.value,
            "booking_id": outcome.booking.booking_id if outcome.booking else None,
            "candidates": outcome.candidates,
            "slot_taken": outcome.slot_taken,
        },
    )
    return outcome.state.value


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

"""FaultIntake: SQS batches of IoT-rule fault envelopes -> tickets (partial batch failures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.escalation import load_escalation
from aftercare.domain.incidents import load_incident_policy
from aftercare.domain.intake import IntakeOutcome, IntakeRules, OutcomeKind
from aftercare.domain.messages import handle_fault_message
from aftercare.domain.rules import load_catalog, load_policy
from aftercare.domain.storms import StormWatch
from aftercare.observability import logger, metrics, tracer
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import (
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = ReportingBatchProcessor(event_type=EventType.SQS)


class Settings(EnvSettings):
    devices_table: str
    customers_table: str
    tickets_table: str
    parked_table: str
    parked_payload_bucket: str
    inventory_table: str
    incidents_table: str
    repeat_window_days: int
    hold_hours: int
    incident_threshold_devices: int  # 0: incidents.yaml's threshold


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.store = DynamoTicketStore(
            tickets_table=settings.tickets_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
            inventory_table=settings.inventory_table,
            incidents_table=settings.incidents_table,
        )
        policy = load_incident_policy().with_threshold(settings.incident_threshold_devices)
        catalog = load_catalog()
        self.watch = StormWatch(
            store=DynamoIncidentStore(
                incidents_table=settings.incidents_table,
                tickets_table=settings.tickets_table,
                policy=policy,
            ),
            policy=policy,
            catalog=catalog,
        )
        self.parked = DynamoParkedStore(
            table=settings.parked_table, bucket=settings.parked_payload_bucket
        )
        self.rules = IntakeRules(
            catalog=catalog,
            policy=load_policy(),
            repeat_window=timedelta(days=settings.repeat_window_days),
            hold_duration=timedelta(hours=settings.hold_hours),
        )
        # every new ticket's escalation schedule: loaded with the other rules (intake itself
        # imports the escalation rules only when it opens a ticket, for the APIs' sake)
        load_escalation()


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


OUTCOME_METRICS = {
    OutcomeKind.OPENED: "TicketOpened",
    OutcomeKind.CORRELATED: "OccurrenceCorrelated",
    OutcomeKind.DUPLICATE: "DuplicateAbsorbed",
}


def _count(outcome: IntakeOutcome) -> None:
    if outcome.kind is OutcomeKind.REJECTED:
        logger.warning(
            "fault report rejected",
            extra={"reason": outcome.reason, "detail": outcome.detail, "thing": outcome.thing},
        )
        with single_metric(name="FaultRejected", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="reason", value=str(outcome.reason))
        return
    metrics.add_metric(name=OUTCOME_METRICS[outcome.kind], unit=MetricUnit.Count, value=1)
    if outcome.repeat_of:
        metrics.add_metric(name="RepeatTicketOpened", unit=MetricUnit.Count, value=1)
    if outcome.incident_id:
        metrics.add_metric(name="IncidentChildOpened", unit=MetricUnit.Count, value=1)
    if outcome.unclassified:
        metrics.add_metric(name="UnclassifiedTicketOpened", unit=MetricUnit.Count, value=1)
    # DEBUG, not INFO: at ~210 bytes a fault it was most of intake's CloudWatch Logs bill, and
    # the ticket (occurrences, timeline) and the metrics above already record every fault.
    logger.debug("fault applied", extra=outcome.model_dump(mode="json", exclude_none=True))


@tracer.capture_method
def record_handler(record: SQSRecord) -> dict[str, Any]:
    d = deps()
    outcome = handle_fault_message(
        record.body,
        record.message_id,
        store=d.store,
        parked=d.parked,
        rules=d.rules,
        now=datetime.now(UTC),
        watch=d.watch,
    )
    _count(outcome)
    return outcome.model_dump(mode="json")


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

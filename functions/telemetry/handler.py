"""Telemetry: SQS batches of IoT-rule telemetry envelopes -> one health write per device.

The whole batch is folded at once (not record by record): that is what makes it one DynamoDB
write per device per batch. A storage error fails the invocation and the batch is delivered
again; the per-device watermark makes the redelivery change nothing that was already applied.
Its second event source is the queue's own dead-letter queue, whose records are parked.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.health import DynamoHealthStore
from aftercare.adapters.notifier_factory import NotifierSettings, build_notifier
from aftercare.adapters.parked import DynamoParkedStore
from aftercare.domain.advice import MaintenanceDesk, ServiceDesk
from aftercare.domain.maintenance import Action, MaintenanceRules, load_maintenance_rules
from aftercare.domain.parking import TELEMETRY, record_dead_letter
from aftercare.domain.telemetry_intake import BatchOutcome, QueueMessage, take_in_telemetry
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point, on_first_use
from aftercare.settings import load_settings
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext


class Settings(NotifierSettings):
    """The notifier's settings (advice) plus telemetry's own and fault intake's (preventive
    tickets)."""

    devices_table: str
    health_table: str
    parked_table: str
    parked_payload_bucket: str
    dead_letter_queue_arn: str
    inventory_table: str
    repeat_window_days: int
    hold_hours: int
    heartbeat_cap_seconds: int  # 0: each model's heartbeat (maintenance.yaml)


def service_desk(settings: Settings) -> ServiceDesk:
    """Where fired maintenance rules go: the notifier (advice) and fault intake (preventive
    tickets). Built when the first rule fires: most batches fire none, so a start does not load
    the notification stack, fault intake, its catalog and its policy for them."""
    from aftercare.adapters.dynamodb import DynamoTicketStore
    from aftercare.domain.intake import IntakeRules
    from aftercare.domain.rules import load_catalog, load_policy

    return ServiceDesk(
        notifier=build_notifier(settings),
        intake_store=DynamoTicketStore(
            tickets_table=settings.tickets_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
            inventory_table=settings.inventory_table,
        ),
        intake=IntakeRules(
            catalog=load_catalog(),
            policy=load_policy(),
            repeat_window=timedelta(days=settings.repeat_window_days),
            hold_duration=timedelta(hours=settings.hold_hours),
        ),
    )


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # validated here, the desk's settings included
        self.store = DynamoHealthStore(
            devices_table=settings.devices_table, health_table=settings.health_table
        )
        self.parked = DynamoParkedStore(
            table=settings.parked_table, bucket=settings.parked_payload_bucket
        )
        self.rules: MaintenanceRules = load_maintenance_rules().with_heartbeat_cap(
            settings.heartbeat_cap_seconds
        )
        self.desk: MaintenanceDesk = on_first_use(lambda: service_desk(settings))


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


def _count(outcome: BatchOutcome) -> None:
    metrics.add_metric(name="TelemetryApplied", unit=MetricUnit.Count, value=outcome.applied)
    metrics.add_metric(name="TelemetrySkipped", unit=MetricUnit.Count, value=outcome.skipped)
    metrics.add_metric(name="HealthWrites", unit=MetricUnit.Count, value=len(outcome.written))
    for acted in outcome.acted:
        logger.info("maintenance rule acted on", extra=asdict(acted))
        name = "MaintenanceAdvice" if acted.action is Action.ADVISE else "PreventiveTicket"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    for reason, count in outcome.rejected.items():
        logger.warning("telemetry rejected", extra={"reason": reason, "count": count})
        with single_metric(name="TelemetryRejected", unit=MetricUnit.Count, value=count) as m:
            m.add_dimension(name="reason", value=reason)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = deps()  # settings validated before any record: a missing variable fails with its name
    now = datetime.now(UTC)
    messages: list[QueueMessage] = []
    for record in SQSEvent(event).records:
        if record.event_source_arn == d.settings.dead_letter_queue_arn:
            sent = datetime.fromtimestamp(int(record.attributes.sent_timestamp) / 1000, tz=UTC)
            receives = int(record.attributes.approximate_receive_count)
            record_dead_letter(
                record.body,
                record.message_id,
                receives,
                sent,
                d.parked,
                source=TELEMETRY.dead_letter_source,
            )
            continue
        messages.append(QueueMessage(body=record.body, message_id=record.message_id))
    outcome = take_in_telemetry(
        messages, store=d.store, parked=d.parked, rules=d.rules, desk=d.desk, now=now
    )
    _count(outcome)
    return {"batchItemFailures": []}

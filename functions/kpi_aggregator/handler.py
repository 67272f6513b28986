"""KpiAggregator (TicketsTable and FieldTable streams): every lifecycle event counted exactly once
in KpiTable, per dimension and day, and the same counters as CloudWatch metrics (EMF).

One record is one or two events (a repeat ticket also reopens the verdict on the ticket it
repeats). The batch's events are applied together (`aftercare.adapters.kpi_store`): grouped by
subject, merged once, and each counter item written once per chunk of subjects. A record that
cannot be read, or whose subject could not be written, is reported by its sequence number
(partial batch response) and redelivered; what it already counted is absorbed by the merge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.kpi_store import DynamoKpiStore, stream_updates
from aftercare.domain.kpis import Contributions, load_kpi_definitions
from aftercare.models.kpis import KpiUpdate
from aftercare.observability import logger, metrics
from aftercare.records import FAILED_RECORD, record_identity
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

TOTAL = "all#all"
# Counters published as metrics (the "all" dimension's movement; ratios are metric math).
METRIC_COUNTERS = {
    "opened": ("KpiOpened", MetricUnit.Count),
    "responded": ("KpiResponded", MetricUnit.Count),
    "response_in_sla": ("KpiResponseInSla", MetricUnit.Count),
    "response_s": ("KpiResponseSeconds", MetricUnit.Seconds),
    "resolved": ("KpiResolved", MetricUnit.Count),
    "resolved_in_sla": ("KpiResolvedInSla", MetricUnit.Count),
    "resolve_s": ("KpiResolveSeconds", MetricUnit.Seconds),
    "resolved_remote": ("KpiResolvedRemote", MetricUnit.Count),
    "resolved_self_service": ("KpiResolvedSelfService", MetricUnit.Count),
    "resolved_repeated": ("KpiResolvedRepeated", MetricUnit.Count),
    "visits_verdict": ("KpiVisitVerdicts", MetricUnit.Count),
    "visits_fixed": ("KpiVisitsFixed", MetricUnit.Count),
    "breached_response": ("KpiSlaBreached", MetricUnit.Count),
    "breached_resolution": ("KpiSlaBreached", MetricUnit.Count),
    "surveys_sent": ("KpiSurveysSent", MetricUnit.Count),
    "surveys_answered": ("KpiSurveysAnswered", MetricUnit.Count),
    "surveys_satisfied": ("KpiSurveysSatisfied", MetricUnit.Count),
}
UNREADABLE = (KeyError, TypeError, ValueError, ValidationError)


class Settings(EnvSettings):
    kpi_table: str


@cache
def deps() -> DynamoKpiStore:
    settings = load_settings(Settings)  # values come from the environment
    return DynamoKpiStore(table=settings.kpi_table, defs=load_kpi_definitions())


def sequence_number(record: dict[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


def publish(diff: Contributions, absorbed: int) -> None:
    if absorbed:
        metrics.add_metric(name="KpiEventDuplicate", unit=MetricUnit.Count, value=absorbed)
    for (dim, _period, name), value in diff.items():
        if dim == TOTAL and name in METRIC_COUNTERS and value:
            metric, unit = METRIC_COUNTERS[name]
            metrics.add_metric(name=metric, unit=unit, value=value)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    store = deps()  # settings validated before any record: a missing variable fails with its name
    failed: list[str] = []
    events: list[tuple[str, list[KpiUpdate]]] = []
    for record in event.get("Records", []):
        try:
            events.append((sequence_number(record), stream_updates(record, store.defs)))
        except UNREADABLE as exc:
            logger.error(FAILED_RECORD, exc_info=exc, extra=record_identity(record))
            failed.append(sequence_number(record))
    applied = store.apply([u for _seq, updates in events for u in updates], datetime.now(UTC))
    publish(applied.diff, applied.absorbed)
    unwritten = {id(update) for update in applied.failed}
    for seq, updates in events:
        if any(id(update) in unwritten for update in updates):
            logger.error(FAILED_RECORD, extra={"sequence_number": seq, "reason": "stale facts"})
            failed.append(seq)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}

"""KpiAggregator (TicketsTable and FieldTable streams): every lifecycle event counted exactly once
in KpiTable, per dimension and day, and the same counters as CloudWatch metrics (EMF).

One record is one or two events (a repeat ticket also reopens the verdict on the ticket it
repeats); each is one transaction with its dedup marker (`aftercare.adapters.kpi_store`).
A failed record is reported by its sequence number (partial batch response) and redelivered;
what it already counted is absorbed by the markers and the merged facts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.kpi_store import DynamoKpiStore, stream_updates
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.kpis import load_kpi_definitions
from aftercare.observability import logger, metrics, tracer
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = ReportingBatchProcessor(event_type=EventType.DynamoDBStreams)
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


class Settings(EnvSettings):
    kpi_table: str


@cache
def deps() -> DynamoKpiStore:
    settings = load_settings(Settings)  # values come from the environment
    return DynamoKpiStore(table=settings.kpi_table, defs=load_kpi_definitions())


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    store = deps()
    for update in stream_updates(record.raw_event, store.defs):
        applied = store.apply(update, datetime.now(UTC))
        if applied.duplicate:
            metrics.add_metric(name="KpiEventDuplicate", unit=MetricUnit.Count, value=1)
            continue
        for (dim, _period, name), value in applied.diff.items():
            if dim == TOTAL and name in METRIC_COUNTERS:
                metric, unit = METRIC_COUNTERS[name]
                metrics.add_metric(name=metric, unit=unit, value=value)
        logger.debug("kpi event", extra={"event_id": update.event_id, "kind": update.kind})


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

"""The KPI part of the demo summary: the service KPIs of the demo's days, read from the stack's
KpiTable as `GET /kpis` computes them (README "Service KPIs")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.adapters.kpi_store import DynamoKpiStore
from aftercare.domain.access import Caller
from aftercare.domain.calendar import load_booking_policy
from aftercare.domain.kpi_report import kpi_report
from aftercare.domain.kpis import load_kpi_definitions

from infra.target import Target

OPERATOR = Caller(subject="demo", username="demo", groups=frozenset({"managers"}))
HEADLINE = (
    "opened",
    "resolved",
    "response_median_min",
    "response_p90_min",
    "resolve_median_min",
    "first_time_fix_rate",
    "repair_success_rate",
    "remote_fix_ratio",
    "repeat_fault_rate",
    "sla_response_compliance",
    "sla_resolution_compliance",
    "sla_breaches",
    "csat",
    "survey_response_rate",
    "utilisation",
)


def kpi_summary(target: Target) -> dict[str, Any]:
    """The headline KPIs from yesterday (UTC: a demo may cross midnight) to the end of the
    booking horizon: visits count on the day they were booked for, and the demo's engineers
    work through visits booked days ahead. And the backlog now."""
    ddb = target.client("dynamodb")
    store = DynamoKpiStore(table=target.resource("KpiTable"), defs=load_kpi_definitions(), ddb=ddb)
    directory = DynamoEngineerDirectory(table=target.resource("FieldTable"), ddb=ddb)
    today = datetime.now(UTC).date()
    report = kpi_report(
        store,
        directory,
        OPERATOR,
        first=today - timedelta(days=1),
        last=today + timedelta(days=load_booking_policy().horizon_days),
        by=None,
        today=today,
    )
    assert not isinstance(report, list)
    kpis = report.kpis
    return {k: kpis[k] for k in HEADLINE} | {"backlog": kpis["backlog"]["by_status"]}

"""KPI API (HTTP API `ServiceApi`, JWT authorizer): the service KPIs of a period.

    GET /kpis?from=D&to=D&by=DIM    the total, or one figure set per value of DIM
    GET /kpis?from=D&to=D&by=day    one figure set per day of the period (a trend in one call)

A function of its own on the same API: its role only reads KpiTable (and the engineer directory
for working time), which the support API's role should not need. Managers see every group;
an engineer only their own engineer figures (no `by`, `by=engineer` or `by=day`); customers 403.
422 `invalid_range` (to before from, more than 92 days), 422 `invalid_dimension`.
Definitions: README "Service KPIs".
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aftercare.adapters.field_directory import DynamoEngineerDirectory
from aftercare.adapters.kpi_store import DynamoKpiStore
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, map_errors
from aftercare.api.resolver import http_api
from aftercare.domain.kpi_report import InvalidDimension, InvalidRange, kpi_report
from aftercare.domain.kpis import load_kpi_definitions
from aftercare.models.kpis import DimensionName, KpiFigures
from aftercare.observability import metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = http_api()


class Settings(EnvSettings):
    kpi_table: str
    field_table: str


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.store = DynamoKpiStore(table=settings.kpi_table, defs=load_kpi_definitions())
        self.directory = DynamoEngineerDirectory(table=settings.field_table)


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


@app.get(
    "/kpis",
    summary="Service KPIs of a period (managers; engineers their own)",
    description=(
        "Days are UTC; `from`/`to` inclusive (default: the 30 days up to today; at most 92). "
        "Without `by` one figure set; with `by` (region, model, category, engineer, partner, "
        "channel, priority) one per value; with `by=day` one per day of the period, oldest "
        'first, each as that one day would read (group `{"day": D}`, no `backlog`). '
        "Definitions and rounding: README, Service KPIs."
    ),
    tags=["kpis"],
    responses=documented(200, "the figures", 403),
)
def get_kpis(
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    by: Annotated[DimensionName | None, Query()] = None,
) -> KpiFigures | list[KpiFigures]:
    d = deps()
    report = kpi_report(
        d.store,
        d.directory,
        current_caller(app),
        first=first,
        last=last,
        by=by,
        today=datetime.now(UTC).date(),
    )
    metrics.add_metric(name="KpiRead", unit=MetricUnit.Count, value=1)
    return report


map_errors(
    app,
    {
        InvalidRange: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_range"),
        InvalidDimension: (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_dimension"),
    },
)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

"""Parked-messages API (HTTP API `ServiceApi`, JWT authorizer): managers list what was parked
and replay one message.

    GET  /parked?source=S&reason=R&limit=N   newest first, with whether a replay can help
    POST /parked/replay {source, parked_key}  send it back to the queue it came from

A function of its own on the same API: its role reads and annotates ParkedTable and may send to
the three intake queues, which no other API function should be able to do. The replay is the
domain's `replay_parked`, the same code as `aftercare dlq replay`. Managers only (403 for
everyone else); 404 `not_found` for an unknown key, 409 `not_replayable` (with why) when a
replay would not change what happened, 502 `replay_failed` when the queue did not take it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aftercare.adapters.parked import DynamoParkedStore, SqsRedelivery
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, map_errors
from aftercare.api.resolver import http_api
from aftercare.domain.parked_desk import (
    MAX_ROWS,
    NotReplayable,
    ParkedNotFound,
    parked_rows,
    replay_named,
)
from aftercare.domain.ports import ReplayFailed
from aftercare.domain.replay import ReplayOutcome
from aftercare.models.parked_api import ParkedRow, ParkedSource, ReplayRequest
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = http_api()


class Settings(EnvSettings):
    parked_table: str
    fault_queue_url: str
    diagnostics_result_queue_url: str
    telemetry_queue_url: str


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.archive = DynamoParkedStore(table=settings.parked_table)
        urls = {
            "FaultQueue": settings.fault_queue_url,
            "DiagnosticsResultQueue": settings.diagnostics_result_queue_url,
            "TelemetryQueue": settings.telemetry_queue_url,
        }
        self.redelivery = SqsRedelivery(queue_url=urls.__getitem__)


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


@app.get(
    "/parked",
    summary="Parked (rejected or dead-lettered) messages, newest first (managers)",
    description=(
        "Each with its reason, a payload excerpt, `replayable` (or `why_not`) and its replays "
        "so far. `source` keeps one source (e.g. fault-intake, fault-dlq, diagnostics), "
        "`reason` the reasons starting with it; `limit` at most 500."
    ),
    tags=["operations"],
    responses=documented(200, "the parked messages", 403),
)
def list_parked(
    source: Annotated[ParkedSource | None, Query()] = None,
    reason: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100,
) -> list[ParkedRow]:
    return parked_rows(
        deps().archive, current_caller(app), source=source, reason=reason, limit=limit
    )


@app.post(
    "/parked/replay",
    summary="Replay one parked message to the queue it came from (managers)",
    description=(
        "Sends a copy back to its source's queue and records the replay (when, by whom, "
        "outcome) on the parked item, which stays. Replaying again is allowed: intake counts a "
        "fault once and settles an answer once."
    ),
    tags=["operations"],
    responses=documented(200, "the replay", 403, 404, 409, 502),
)
def replay(body: ReplayRequest) -> ReplayOutcome:
    d = deps()
    outcome = replay_named(
        d.archive,
        d.redelivery,
        current_caller(app),
        source=body.source,
        parked_key=body.parked_key,
        now=datetime.now(UTC),
    )
    metrics.add_metric(name="ParkedReplayed", unit=MetricUnit.Count, value=1)
    logger.info("parked message replayed", extra={"parked_key": body.parked_key})
    return outcome


map_errors(
    app,
    {
        ParkedNotFound: (HTTPStatus.NOT_FOUND, "not_found"),
        NotReplayable: (HTTPStatus.CONFLICT, "not_replayable"),
        ReplayFailed: (HTTPStatus.BAD_GATEWAY, "replay_failed"),
    },
)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

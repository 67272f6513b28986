"""Fleet incidents (problem management) for engineers and managers: list, show, resolve.

A Powertools Router included into the support API's one resolver (`functions/api/handler.py`
calls `install`): the same caller middleware, strict bodies, error body and OpenAPI document.
Customers get 403 (an incident spans many customers' devices). Errors map to HTTP here, once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict

from aftercare.adapters.campaigns import SqsCampaignQueue
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.incidents import DynamoIncidentStore
from aftercare.api.caller import CallerRouter
from aftercare.api.errors import documented, map_errors
from aftercare.domain.access import Caller
from aftercare.domain.incident_desk import (
    CampaignRunning,
    IncidentAlreadyResolved,
    IncidentDesk,
    IncidentView,
    ResolveIncident,
)
from aftercare.domain.incidents import IncidentStatus, load_incident_policy
from aftercare.domain.ports.campaigns import CampaignNotQueued
from aftercare.domain.ports.incidents import IncidentMoved, IncidentNotFound
from aftercare.observability import logger, metrics
from aftercare.settings import EnvSettings, load_settings

router = CallerRouter("incident_routes_app")

IncidentId = Annotated[
    str, PathParam(pattern=r"^INC-[0-9]{12}-[0-9a-f]{6}$", description="the incident's id")
]


class IncidentRow(BaseModel):
    """One line of `GET /incidents`."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    incident_id: str
    fault_code: str
    codes: list[str]  # the codes it covers (one, or a grouped category's)
    category: str | None = None  # the category whose codes its storm grouped
    firmware: str | None = None  # the firmware version its storm was split to
    model: str
    title_en: str
    status: IncidentStatus
    children: int
    opened_at: datetime
    resolved_at: datetime | None = None


class IncidentSettings(EnvSettings):
    incidents_table: str
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str
    campaign_queue_url: str
    incident_campaign_page_seconds: int  # 0: incidents.yaml's page_seconds


@cache
def desk() -> IncidentDesk:
    settings = load_settings(IncidentSettings)  # values come from the environment
    policy = load_incident_policy().with_page_seconds(settings.incident_campaign_page_seconds)
    return IncidentDesk(
        incidents=DynamoIncidentStore(
            incidents_table=settings.incidents_table,
            tickets_table=settings.tickets_table,
            policy=policy,
        ),
        tickets=DynamoTicketStore(
            tickets_table=settings.tickets_table,
            devices_table=settings.devices_table,
            customers_table=settings.customers_table,
            inventory_table=settings.inventory_table,
        ),
        queue=SqsCampaignQueue(queue_url=settings.campaign_queue_url),
        policy=policy,
    )


def caller() -> Caller:
    return router.caller()


@router.get(
    "/incidents",
    summary="Fleet incidents, newest first (engineers, managers)",
    description="403 for customers: an incident spans many customers' devices.",
    tags=["incidents"],
    responses=documented(200, "the incidents", 403),
)
def incidents_route(
    limit: Annotated[int, Query(ge=1, le=100, description="at most this many")] = 50,
) -> list[IncidentRow]:
    rows = desk().listing(caller(), limit)
    return [
        IncidentRow(
            incident_id=i.incident_id,
            fault_code=i.fault_code,
            codes=i.covered_codes,
            category=i.category,
            firmware=i.firmware,
            model=i.model,
            title_en=i.title_en,
            status=i.status,
            children=children,
            opened_at=i.opened_at,
            resolved_at=i.resolved_at,
        )
        for i, children in rows
    ]


@router.get(
    "/incidents/<incident_id>",
    summary="One fleet incident: counts, firmware versions, regions, trend, affected devices",
    description=(
        "`stats` sums the incident's shards: children, diagnostics sent and skipped (sampled), "
        "reservations held and avoided, backorder demand per SKU, messages sent and saved, "
        "firmware versions, regions and the per-minute trend. `children` lists up to 1,000 "
        "affected devices with their tickets' status. `campaign` (once resolving started) is "
        "the fix campaign's progress: fix, who, `started_at`, `page_size`, `pages_done`, the "
        "children walked so far as `sent` / `not_sent` / `already_closed`, `finished_at`. "
        "403 for customers, 404 unknown id."
    ),
    tags=["incidents"],
    responses=documented(200, "the incident", 403, 404),
)
def incident_route(incident_id: IncidentId) -> IncidentView:
    return desk().show(caller(), incident_id)


@router.post(
    "/incidents/<incident_id>/resolve",
    summary="Start a fleet incident's fix campaign to its devices (engineers, managers)",
    description=(
        "Answers 202 at once, whatever the incident's size: the incident is `mitigating` with "
        "its `campaign` recorded (fix, who, `started_at`, counts at 0) and the campaign is "
        "queued. A worker sends it to every active child's device through the diagnostics "
        "path, a page at a time, paced at the policy's rate (20 devices/s: a 50,000-device "
        "storm takes ~42 min), counting each child `sent`, `not_sent` or `already_closed`; "
        "after the last page the incident is `resolved` (new reports of the code are ordinary "
        "tickets again). Follow it with `GET /incidents/{incident_id}`. Each device's answer "
        "decides its ticket: fault gone -> resolved `fleet_fix`, held parts released; otherwise "
        "it stays open on the normal path. A resolve of a `mitigating` incident whose campaign "
        "has not moved for 15 minutes (its page lost or dead-lettered) with the same fix "
        "queues its next page again (202; a page is never sent or counted twice). 409 "
        "`already_resolved`, `campaign_running` (`mitigating` and moving, or another fix), "
        "`incident_moved` (another resolve won); 422 for a `firmware_fix` without a note; 502 "
        "`campaign_not_queued` (a new campaign leaves the incident open: retry)."
    ),
    tags=["incidents"],
    status_code=HTTPStatus.ACCEPTED,
    responses=documented(202, "the incident, mitigating, with its campaign queued", 409, 502),
)
def resolve_route(incident_id: IncidentId, body: ResolveIncident) -> IncidentView:
    view = desk().resolve(caller(), incident_id, body, datetime.now(UTC))
    metrics.add_metric(name="IncidentCampaignStarted", unit=MetricUnit.Count, value=1)
    logger.info(
        "incident campaign queued", extra={"incident_id": incident_id, "fix": body.fix.value}
    )
    return view


def install(app: ApiGatewayResolver) -> None:
    """Include the routes and map their errors on `app`."""
    app.include_router(router)
    map_errors(
        app,
        {
            IncidentNotFound: (HTTPStatus.NOT_FOUND, "not_found"),
            IncidentAlreadyResolved: (HTTPStatus.CONFLICT, "already_resolved"),
            CampaignRunning: (HTTPStatus.CONFLICT, "campaign_running"),
            CampaignNotQueued: (HTTPStatus.BAD_GATEWAY, "campaign_not_queued"),
            IncidentMoved: (HTTPStatus.CONFLICT, "incident_moved"),
        },
    )

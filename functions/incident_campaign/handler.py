"""IncidentCampaign (CampaignQueue): sends a fleet incident's fix campaign one page per message.

Why a page per message, paced by sleeping inside the invocation, and not `DelaySeconds`:
pacing is per device (1 / `campaign_per_second`, 50 ms at 20/s), and SQS delays count whole
seconds (0-900), so delayed messages could only pace whole bursts. A page is therefore
`page_seconds` (20 s) of the campaign at the policy's rate (400 children at 20/s), each send
waiting until its slot (the sends' own DynamoDB and IoT round trips count against the
interval). Sends slower than the rate end the page at twice its planned time (40 s; the next
page continues after the last child walked), so a page stays far inside the function's 120 s
timeout, itself far below Lambda's 900 s limit and one sixth of the queue's visibility timeout
(720 s) as for every Lambda-polled queue here. The next page is queued without delay as soon
as the page is recorded, so a campaign is one message at a time and keeps its rate across
pages: 50,000 children are 125 pages, ~42 minutes. BatchSize 1: one page per invocation, so a
batch never adds up to more than one page of sending.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.campaigns import DynamoCampaignStore, SqsCampaignQueue
from aftercare.adapters.diagnostics import DynamoDiagnosticsStore, IotDataPublisher
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.batch import ReportingBatchProcessor
from aftercare.domain.incident_campaign import CampaignWorker
from aftercare.domain.incidents import CampaignPage, load_incident_policy
from aftercare.observability import logger, tracer
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
    incidents_table: str
    tickets_table: str
    devices_table: str
    customers_table: str
    inventory_table: str
    campaign_queue_url: str
    iot_data_endpoint: str  # empty in AWS: the account's iot:Data-ATS endpoint is looked up


@cache
def deps() -> CampaignWorker:
    settings = load_settings(Settings)  # values come from the environment
    policy = load_incident_policy()
    return CampaignWorker(
        incidents=DynamoCampaignStore(
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
        diagnostics=DynamoDiagnosticsStore(
            tickets_table=settings.tickets_table, inventory_table=settings.inventory_table
        ),
        publisher=IotDataPublisher(endpoint=settings.iot_data_endpoint),
        queue=SqsCampaignQueue(queue_url=settings.campaign_queue_url),
        policy=policy,
        pause=time.sleep,
        clock=lambda: datetime.now(UTC),
    )


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    page = CampaignPage.model_validate_json(record.body)  # ours: a bad one fails to the DLQ
    redelivered = int(record.attributes.approximate_receive_count) > 1
    outcome = deps().run_page(page, datetime.now(UTC), redelivered=redelivered)
    logger.info(
        "campaign page",
        extra={"incident_id": page.incident_id, "page": page.page, "outcome": outcome.value},
    )
    with single_metric(name="CampaignPage", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="outcome", value=outcome.value)
    return outcome.value


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any record: a missing variable fails with its name
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

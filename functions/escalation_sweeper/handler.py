"""EscalationSweeper (scheduled): acts once on each SLA escalation step that fell due (see
`aftercare.domain.escalation`), skipping steps a status change made stale."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.escalation import DynamoEscalations, SnsDutyPager
from aftercare.domain.escalation import load_escalation, sweep_escalations
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext


class Settings(EnvSettings):
    tickets_table: str
    duty_topic_arn: str


@cache
def deps() -> tuple[DynamoEscalations, SnsDutyPager]:
    settings = load_settings(Settings)  # values come from the environment
    return (
        DynamoEscalations(tickets_table=settings.tickets_table),
        SnsDutyPager(topic_arn=settings.duty_topic_arn),
    )


@entry_point
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    store, pager = deps()
    plans = sweep_escalations(store, pager, load_escalation(), datetime.now(UTC))
    actions = Counter(step.action.value for plan in plans for step in plan.acted)
    skipped = sum(len(plan.skipped) for plan in plans)
    for action, count in actions.items():
        metrics.add_metric(name=f"SlaEscalation_{action}", unit=MetricUnit.Count, value=count)
    if plans:
        logger.info("SLA escalations", extra={"actions": dict(actions), "stale_skipped": skipped})
    return {"tickets": len(plans), "actions": dict(actions), "stale_skipped": skipped}

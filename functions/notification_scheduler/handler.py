"""NotificationScheduler (every NotificationSweepRate): sends what has come due.

Bundles at the end of quiet hours or of the digest window, surveys after resolution, retries
of transient channel failures, and anything a crashed notifier left pending.

A backlog is worked through within a time budget: no new item starts once less than
SAFETY_MARGIN of the invocation's time remains; what is left is released for the next run.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aftercare.adapters.notifier_factory import NotifierSettings, build_notifier
from aftercare.domain.budget import Budget
from aftercare.domain.notifier import Notifier
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

# Enough to finish the message in hand (a channel call plus its bookkeeping) and report.
SAFETY_MARGIN = timedelta(seconds=5)


class Settings(NotifierSettings):
    """Same environment as the Notifier function."""


@cache
def deps() -> Notifier:
    return build_notifier(load_settings(Settings))  # values come from the environment


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    notifier = deps()  # settings validated first: a missing variable fails with its name
    # The data class, not the parser's EventBridgeModel: importing the parser models costs more
    # of a cold start than the whole tick is worth (only its time is read).
    tick = datetime.fromisoformat(EventBridgeEvent(event).time)
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis())
    budget = Budget.from_remaining(remaining, margin=SAFETY_MARGIN)
    outcomes = notifier.run_due(datetime.now(UTC), budget)
    spent = not budget.has_time()  # run_due only returns early when the budget is spent
    counts = Counter(f"{o.kind}:{o.result}" for o in outcomes)
    for outcome in outcomes:
        if outcome.language_fallback:
            logger.warning(
                "template translation missing; sent in English",
                extra={"kind": outcome.kind, "requested_language": outcome.language_fallback},
            )
        logger.info("due notification", extra=outcome.model_dump(mode="json", exclude_none=True))
    sent = sum(1 for o in outcomes if o.result == "sent")
    metrics.add_metric(name="DueNotificationsSent", unit=MetricUnit.Count, value=sent)
    if spent:
        logger.warning("time budget spent; what is left is released for the next run")
    return {"tick": tick.isoformat(), "outcomes": dict(counts), "budget_spent": spent}

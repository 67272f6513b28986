"""NotificationScheduler (every NotificationSweepRate): sends what has come due.

Bundles at the end of quiet hours or of the digest window, surveys after resolution, retries
of transient channel failures, and anything a crashed notifier left pending.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.notifier_factory import NotifierSettings, build_notifier
from aftercare.domain.notifier import Notifier
from aftercare.observability import logger, metrics, tracer
from aftercare.settings import load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext


class Settings(NotifierSettings):
    """Same environment as the Notifier function."""


@cache
def deps() -> Notifier:
    return build_notifier(load_settings(Settings))  # values come from the environment


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    notifier = deps()  # settings validated first: a missing variable fails with its name
    tick = parse(event=event, model=EventBridgeModel)
    outcomes = notifier.run_due(datetime.now(UTC))
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
    return {"tick": tick.time.isoformat(), "outcomes": dict(counts)}

"""HealthSweeper (scheduled): one "device offline" check per device whose telemetry stopped for
longer than its model's heartbeat (see `aftercare.domain.silence`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aftercare.adapters.health import DynamoHealthStore
from aftercare.adapters.notifier_factory import NotifierSettings, build_notifier
from aftercare.domain.advice import NotifyingDesk
from aftercare.domain.maintenance import MaintenanceRules, load_maintenance_rules
from aftercare.domain.silence import sweep_silence
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import load_settings
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext


class Settings(NotifierSettings):
    """The notifier's settings plus the registry and health tables."""

    devices_table: str
    health_table: str


class Deps:
    def __init__(self, settings: Settings) -> None:
        self.index = DynamoHealthStore(
            devices_table=settings.devices_table, health_table=settings.health_table
        )
        self.desk = NotifyingDesk(build_notifier(settings))
        self.rules: MaintenanceRules = load_maintenance_rules()


@cache
def deps() -> Deps:
    return Deps(load_settings(Settings))  # values come from the environment


@entry_point
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    d = deps()
    checked = sweep_silence(d.index, d.desk, d.rules, datetime.now(UTC))
    results = Counter(s.result for s in checked)
    metrics.add_metric(name="DeviceOffline", unit=MetricUnit.Count, value=len(checked))
    if checked:
        logger.info("devices gone silent", extra={"results": dict(results)})
    return {"devices": len(checked), "results": dict(results)}

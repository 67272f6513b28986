"""Schedule event sources of a local Lambda worker: an EventBridge "Scheduled Event" every
``rate_seconds``."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from infra.local.lambda_runtime import FunctionIdentity, Invoker
from infra.local.worker_spec import ScheduleSourceSpec


def scheduled_event(identity: FunctionIdentity, event_id: str, region: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event" as Lambda receives it."""
    account = identity.arn.split(":")[4]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{identity.name}-{event_id}"],
        "detail": {},
    }


class Scheduler:
    """Invokes the handler every ``rate_seconds`` (first time one period after start)."""

    def __init__(
        self,
        source: ScheduleSourceSpec,
        identity: FunctionIdentity,
        invoker: Invoker,
        region: str,
        stop: threading.Event,
    ) -> None:
        self._source = source
        self._identity = identity
        self._invoker = invoker
        self._region = region
        self._stop = stop
        self.thread = threading.Thread(
            target=self._run, name=f"schedule-{source.event_id}", daemon=True
        )

    def _run(self) -> None:
        rate = self._source.rate_seconds
        next_at = time.monotonic() + rate
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            event = scheduled_event(self._identity, self._source.event_id, self._region)
            self._invoker.invoke(event, source=f"Schedule {self._source.event_id}")
            while next_at <= time.monotonic():  # skip ticks missed while the handler ran
                next_at += rate

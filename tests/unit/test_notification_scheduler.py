"""The NotificationScheduler handler takes its time budget from the Lambda context."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aftercare.domain.composition import (
    Composer,
)
from aftercare.domain.notifications import (
    Survey,
    TicketFacts,
)
from aftercare.domain.notifier import Notifier, NotifierPolicy
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.pricing import load_price_table
from aftercare.domain.templates import load_book

from tests.fakes.notifications import FakeNotificationStore, RecordingSender

ROOT = Path(__file__).resolve().parents[2]
TICK = {
    "version": "0",
    "id": "1",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-27T11:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


class Context:
    function_name = "notification-scheduler-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:scheduler-test"
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_scheduler() -> ModuleType:
    path = ROOT / "functions/notification_scheduler/handler.py"
    spec = importlib.util.spec_from_file_location("handler_scheduler_unit", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def due_survey(store: FakeNotificationStore) -> None:
    now = datetime.now(UTC)
    facts = TicketFacts.model_validate(
        {
            "ticket_id": "T-1",
            "customer_id": "c-1",
            "thing": "ac-hp-0001",
            "model": "AC-HP",
            "fault_code": "FAN-STALL",
            "title_en": "Cooling fan stalled",
            "title_zh": "散热风扇停转",
            "severity": "major",
            "status": "resolved",
            "category": "thermal",
            "region": "eu-central",
            "in_warranty": True,
            "opened_at": now.isoformat(),
            "first_seen": now.isoformat(),
        }
    )
    store.profiles["c-1"] = NotificationProfile.model_validate(
        {
            "customer_id": "c-1",
            "name": "Ada",
            "language": "en",
            "time_zone": "UTC",
            "channels": ["email"],
            "contact": {"email": "ada@example.com"},
            "quiet_hours": None,
        }
    )
    store.schedule_survey(
        Survey(
            survey_id="S-1",
            ticket_id="T-1",
            customer_id="c-1",
            facts=facts,
            created_at=now - timedelta(days=1),
            due_at=now - timedelta(minutes=1),
        )
    )


@pytest.fixture
def scheduler(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, FakeNotificationStore]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "AftercareTest")
    module = load_scheduler()
    # The shared Metrics is built once per process, maybe before the variable was set.
    monkeypatch.setattr(module.metrics, "namespace", "AftercareTest")
    store = FakeNotificationStore()
    notifier = Notifier(
        store,
        {Channel.EMAIL: RecordingSender()},
        Composer(load_book(), load_price_table(), "https://s.example.com/surveys"),
        NotifierPolicy(digest_window=timedelta(minutes=5), survey_delay=timedelta(hours=24)),
    )
    monkeypatch.setattr(module, "deps", lambda: notifier)
    return module, store


def test_a_run_with_less_than_the_safety_margin_left_takes_no_work(scheduler: Any) -> None:
    # Given a due survey, and an invocation with less time left than the safety margin
    module, store = scheduler
    due_survey(store)
    short = int(module.SAFETY_MARGIN.total_seconds() * 1000) - 1
    # When the scheduler runs, then it sends nothing and says its budget is spent
    first = module.handler(TICK, Context(short))
    assert first["outcomes"] == {} and first["budget_spent"]
    assert store.surveys["S-1"].status == "scheduled"
    # When the next run has time, then the survey goes out, once
    second = module.handler(TICK, Context(30_000))
    assert second["outcomes"] == {"survey:sent": 1} and not second["budget_spent"]
    assert store.surveys["S-1"].status == "sent"

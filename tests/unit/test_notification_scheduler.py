"""The NotificationScheduler handler takes its time budget from the Lambda context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from aftercare.domain.composition import Composer
from aftercare.domain.notifications import Survey
from aftercare.domain.notifier import Notifier, NotifierPolicy
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.pricing import load_price_table
from aftercare.domain.templates import load_book

from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.fakes.notifications import FakeNotificationStore, RecordingSender, ticket_summary

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


def due_survey(store: FakeNotificationStore) -> None:
    now = datetime.now(UTC)
    facts = ticket_summary(now, status="resolved", region="eu-central")
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
    module = load_handler("notification_scheduler", "handler_scheduler_unit")
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
    first = module.handler(TICK, FakeContext(short))
    assert first["outcomes"] == {} and first["budget_spent"]
    assert store.surveys["S-1"].status == "scheduled"
    # When the next run has time, then the survey goes out, once
    second = module.handler(TICK, FakeContext(30_000))
    assert second["outcomes"] == {"survey:sent": 1} and not second["budget_spent"]
    assert store.surveys["S-1"].status == "sent"

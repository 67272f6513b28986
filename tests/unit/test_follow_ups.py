"""`GET /followups`: the follow-ups low survey ratings opened, newest first, for managers only
(N7 on moto, tables from template.yaml; the survey function wired to the real store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.notifications_store import DynamoNotificationStore
from aftercare.adapters.survey_store import DynamoSurveyStore
from aftercare.domain.notifications import Survey
from aftercare.domain.surveys import SurveyAnswer, answer_survey, survey_id_for
from moto import mock_aws

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.fakes.notifications import ticket_summary
from tests.fakes.tables import create_template_tables

SURVEY = load_handler("survey", "survey_followups_handler")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TABLE = "aftercare-notifications-test"
MANAGER = {"token_use": "id", "sub": "m", "cognito:username": "mgr-grace",
           "cognito:groups": "[managers]"}  # fmt: skip
ENGINEER = {"token_use": "id", "sub": "e", "cognito:username": "eng-ada",
            "cognito:groups": "[engineers]"}  # fmt: skip
CUSTOMER = {"token_use": "id", "sub": "c", "cognito:username": "cust",
            "cognito:groups": "[customers]", "custom:customer_id": "c-1"}  # fmt: skip


def answered(
    store: DynamoNotificationStore, surveys: DynamoSurveyStore, n: int, rating: int
) -> None:
    """Ticket T-n's survey, sent and answered with `rating` n minutes after NOW."""
    at = NOW + timedelta(minutes=n)
    survey = Survey(
        survey_id=survey_id_for(f"T-{n}"),
        ticket_id=f"T-{n}",
        customer_id="c-1",
        facts=ticket_summary(NOW),
        created_at=NOW,
        due_at=NOW,
    )
    store.schedule_survey(survey)
    store.settle_survey(survey.survey_id, "sent", sent_at=NOW, retry_at=None)
    answer_survey(
        surveys, survey.survey_id, "c-1", SurveyAnswer(rating=rating, comment=f"r{rating}"), at
    )


@pytest.fixture
def surveys(fake_aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        ddb = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(ddb, ("NotificationsTable", "TicketsTable", "CustomersTable"))
        store = DynamoNotificationStore(
            table=TABLE,
            tickets_table="aftercare-tickets-test",
            customers_table="aftercare-customers-test",
            ddb=ddb,
        )
        surveys = DynamoSurveyStore(table=TABLE, tickets_table="aftercare-tickets-test", ddb=ddb)
        # Given four answers: 1 and 2 open follow-ups, 5 and 4 do not
        for n, rating in enumerate((1, 5, 2, 4), start=1):
            answered(store, surveys, n, rating)
        monkeypatch.setattr(SURVEY, "deps", lambda: surveys)
        yield surveys


def call(path: str, claims: dict[str, Any]) -> tuple[int, Any]:
    response = SURVEY.app.resolve(http_api_event("GET", path, claims), None)
    return response["statusCode"], json.loads(response["body"])


def test_managers_see_the_follow_ups_of_low_ratings_newest_first(surveys):
    status, rows = call("/followups", MANAGER)
    assert status == 200
    assert [(r["ticket_id"], r["rating"], r["comment"]) for r in rows] == [
        ("T-3", 2, "r2"),
        ("T-1", 1, "r1"),
    ]
    assert {r["status"] for r in rows} == {"open"}
    assert rows[0]["survey_id"] == survey_id_for("T-3") and rows[0]["customer_id"] == "c-1"


def test_the_list_is_bounded_by_limit(surveys):
    assert [r["ticket_id"] for r in call("/followups?limit=1", MANAGER)[1]] == ["T-3"]
    assert call("/followups?limit=0", MANAGER)[0] == 422
    assert call("/followups?limit=201", MANAGER)[0] == 422


@pytest.mark.parametrize("claims", [ENGINEER, CUSTOMER])
def test_only_managers_see_follow_ups(surveys, claims):
    status, body = call("/followups", claims)
    assert (status, body["reason"]) == (403, "forbidden")

"""POST /surveys/{id}/answer refuses hostile JSON with a 4xx and a reason, never a 500, before
any store is touched (the strict decoder runs as the resolver's body deserializer); its refusals
use the shared error body (`reason` and `message`)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler
from tests.unit.test_support_api import HOSTILE_BODIES

SURVEY = load_handler("survey", "survey_handler")


CUSTOMER = {
    "sub": "sub-c-0001",
    "cognito:username": "c-0001",
    "cognito:groups": "[customers]",
    "custom:customer_id": "c-0001",
    "token_use": "id",
}


def post_answer(body: bytes, claims: dict[str, str] = CUSTOMER) -> tuple[int, dict[str, Any]]:
    event = http_api_event("POST", "/surveys/S-ABC/answer", claims, body)
    response = SURVEY.app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(("body", "status", "reason"), HOSTILE_BODIES)
def test_hostile_survey_answers_are_4xx_with_a_reason(monkeypatch, body, status, reason):
    def no_store() -> None:
        raise AssertionError("a refused body must not reach the store")

    monkeypatch.setattr(SURVEY, "deps", no_store)
    body = body.replace(b'"params"', b'"rating"').replace(b'"routine"', b'"comment"')
    answer_status, answer = post_answer(body)
    assert (answer_status, answer["reason"]) == (status, reason)
    assert answer["message"]


class OneSurvey:
    """A store holding survey S-ABC, owned by customer c-0002."""

    def get_survey(self, survey_id: str) -> SimpleNamespace | None:
        return SimpleNamespace(customer_id="c-0002") if survey_id == "S-ABC" else None


def test_another_customers_survey_reads_like_a_missing_one(monkeypatch):
    monkeypatch.setattr(SURVEY, "deps", OneSurvey)
    status, body = post_answer(b'{"rating": 5}')
    assert (status, body) == (404, {"reason": "not_found", "message": "survey S-ABC not found"})


def test_staff_may_read_surveys_but_not_answer_them(monkeypatch):
    monkeypatch.setattr(SURVEY, "deps", OneSurvey)
    engineer = CUSTOMER | {"cognito:groups": "[engineers]"}
    status, body = post_answer(b'{"rating": 5}', engineer)
    assert (status, body["reason"]) == (403, "forbidden") and "customer" in body["message"]

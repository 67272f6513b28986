"""Survey API (HTTP API `ServiceApi`, JWT authorizer): read a survey, answer it once.

    GET  /surveys/{survey_id}          the owner (or a manager/engineer) reads it
    POST /surveys/{survey_id}/answer   the owning customer answers: {"rating": 1-5, "comment"?}
    GET  /followups                    managers: the follow-ups low ratings (1-2) opened

A function of its own on the same API (its role writes surveys, not diagnostics), built from
the resolver the support API uses (`aftercare.api.resolver`): the caller comes
from the shared helper (ID tokens only, staff or one customer) and errors use the shared
`ErrorBody` (`{"reason", "message"}`): 401 not an ID token, 403 not a customer (answering),
404 unknown survey (also another customer's: its existence is not confirmed), 409 already
answered or not sent yet, 422 invalid body (unknown fields included).
The routes are part of the support API's OpenAPI document (`python -m infra.openapi`).
Bodies go through the strict decoder (`aftercare.models.strict_json`): 400 a body that is not
JSON or JSON we refuse (too deep, NaN, duplicate keys), 422 numbers DynamoDB cannot store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aftercare.adapters.survey_store import DynamoSurveyStore
from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, error, map_errors
from aftercare.api.resolver import http_api
from aftercare.domain.access import Caller
from aftercare.domain.notifications import Survey
from aftercare.domain.surveys import (
    MAX_FOLLOW_UPS,
    AlreadyAnswered,
    FollowUp,
    NotYourSurvey,
    SurveyAnswer,
    SurveyNotFound,
    SurveyNotOpen,
    answer_survey,
    follow_ups_for,
    readable_survey,
)
from aftercare.models.api import SurveyId, SurveyView
from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

app = http_api()


class Settings(EnvSettings):
    notifications_table: str
    tickets_table: str
    customers_table: str


@cache
def deps() -> DynamoSurveyStore:
    settings = load_settings(Settings)  # values come from the environment
    return DynamoSurveyStore(
        table=settings.notifications_table, tickets_table=settings.tickets_table
    )


def caller() -> Caller:
    return current_caller(app)


def survey_view(survey: Survey) -> SurveyView:
    return SurveyView(
        survey_id=survey.survey_id,
        ticket_id=survey.ticket_id,
        fault_code=survey.facts.fault_code,
        title_en=survey.facts.title_en,
        title_zh=survey.facts.title_zh,
        status=survey.status,
        sent_at=survey.sent_at,
        rating=survey.rating,
        comment=survey.comment,
        answered_at=survey.answered_at,
    )


@app.get(
    "/surveys/<survey_id>",
    summary="A satisfaction survey (its owner, engineers, managers)",
    tags=["surveys"],
    responses=documented(200, "the survey"),
)
def get_survey(survey_id: Annotated[SurveyId, PathParam()]) -> SurveyView:
    survey = readable_survey(deps(), survey_id, caller().owner_scope)
    metrics.add_metric(name="SurveyRead", unit=MetricUnit.Count, value=1)
    return survey_view(survey)


@app.post(
    "/surveys/<survey_id>/answer",
    summary="Answer a survey, once (the customer who owns the device)",
    tags=["surveys"],
    responses=documented(200, "the answered survey", 409),
)
def post_answer(survey_id: Annotated[SurveyId, PathParam()], answer: SurveyAnswer) -> SurveyView:
    customer_id = caller().require_customer("answer its survey")
    survey = answer_survey(deps(), survey_id, customer_id, answer, datetime.now(UTC))
    metrics.add_metric(name="SurveyAnswered", unit=MetricUnit.Count, value=1)
    if survey.rating is not None and survey.rating <= 2:
        metrics.add_metric(name="FollowUpOpened", unit=MetricUnit.Count, value=1)
    logger.info("survey answered", extra={"survey_id": survey_id, "rating": survey.rating})
    return survey_view(survey)


@app.get(
    "/followups",
    summary="Follow-ups from low survey ratings (1-2), newest first (managers)",
    tags=["surveys"],
    responses=documented(200, "the follow-ups", 403),
)
def list_follow_ups(
    limit: Annotated[int, Query(ge=1, le=MAX_FOLLOW_UPS)] = 50,
) -> list[FollowUp]:
    return follow_ups_for(deps(), caller(), limit=limit)


@app.exception_handler([SurveyNotFound, NotYourSurvey])
def not_found(exc: SurveyNotFound | NotYourSurvey) -> Response[str]:
    # Another customer's survey reads exactly like a missing one.
    return error(HTTPStatus.NOT_FOUND, "not_found", str(SurveyNotFound(exc.survey_id)))


map_errors(
    app,
    {
        AlreadyAnswered: (HTTPStatus.CONFLICT, "already_answered"),
        SurveyNotOpen: (HTTPStatus.CONFLICT, "survey_not_open"),
    },
)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

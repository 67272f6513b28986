"""Survey API (HTTP API `ServiceApi`, JWT authorizer): read a survey, answer it once.

    GET  /surveys/{survey_id}          the owner (or a manager/engineer) reads it
    POST /surveys/{survey_id}/answer   the owning customer answers: {"rating": 1-5, "comment"?}

The caller comes from the shared helper (`aftercare.api.caller`: ID tokens only, staff or one
customer) and errors use the support API's `ErrorBody`: 401 not an ID token, 403 not a
customer (answering), 404 unknown survey (also another customer's: its existence is not
confirmed), 409 already answered or not sent yet, 422 invalid body (unknown fields included).
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
from aftercare.api.caller import authenticate, current_caller
from aftercare.api.errors import documented, error, register_common
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.notifications import Survey
from aftercare.domain.surveys import (
    AlreadyAnswered,
    NotYourSurvey,
    SurveyAnswer,
    SurveyNotFound,
    SurveyNotOpen,
    answer_survey,
    readable_survey,
)
from aftercare.models.api import SurveyId, SurveyView
from aftercare.models.strict_json import loads_strict
from aftercare.observability import logger, metrics, tracer
from aftercare.settings import EnvSettings, load_settings
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

# The one strict decoder for bodies: hostile JSON is a 400/422 with a reason, never a 500.
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=loads_strict)
app.use([authenticate()])
register_common(app)


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
    who = caller()
    if who.staff or who.customer_id is None:
        raise Forbidden("only the customer who owns the device answers its survey")
    survey = answer_survey(deps(), survey_id, who.customer_id, answer, datetime.now(UTC))
    metrics.add_metric(name="SurveyAnswered", unit=MetricUnit.Count, value=1)
    if survey.rating is not None and survey.rating <= 2:
        metrics.add_metric(name="FollowUpOpened", unit=MetricUnit.Count, value=1)
    logger.info("survey answered", extra={"survey_id": survey_id, "rating": survey.rating})
    return survey_view(survey)


@app.exception_handler([SurveyNotFound, NotYourSurvey])
def not_found(exc: Exception) -> Response[str]:
    # Another customer's survey reads exactly like a missing one.
    survey_id = app.current_event.path.split("/")[2]
    return error(HTTPStatus.NOT_FOUND, "not_found", str(SurveyNotFound(survey_id)))


@app.exception_handler(AlreadyAnswered)
def already_answered(exc: AlreadyAnswered) -> Response[str]:
    return error(HTTPStatus.CONFLICT, "already_answered", str(exc))


@app.exception_handler(SurveyNotOpen)
def not_open(exc: SurveyNotOpen) -> Response[str]:
    return error(HTTPStatus.CONFLICT, "survey_not_open", str(exc))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps()  # settings validated before any route: a missing variable fails with its name
    return app.resolve(event, context)

"""Survey API (HTTP API `ServiceApi`, JWT authorizer): read a survey, answer it once.

    GET  /surveys/{survey_id}          the owner (or a manager/engineer) reads it
    POST /surveys/{survey_id}/answer   the owning customer answers: {"rating": 1-5, "comment"?}

Errors: 404 unknown survey (also another customer's: its existence is not confirmed), 403 not a
customer, 409 already answered or not sent yet, 422 invalid body (unknown fields included, numbers
DynamoDB cannot store), 400 a body that is not JSON or is JSON we refuse (too deep, NaN,
duplicate keys; see `aftercare.models.strict_json`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from http import HTTPStatus
from typing import Any

from aftercare.adapters.notifications_store import DynamoNotificationStore
from aftercare.domain.access import Caller, Forbidden, caller_from_claims
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
from aftercare.models.strict_json import MALFORMED_JSON, ContentRejected, loads_strict
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic_settings import BaseSettings

logger = Logger()
metrics = Metrics()
tracer = Tracer()
# The one strict decoder for bodies: hostile JSON is a 400/422 with a reason, never a 500.
app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=loads_strict)


class Settings(BaseSettings):
    notifications_table: str
    tickets_table: str
    customers_table: str


@cache
def store() -> DynamoNotificationStore:
    settings = Settings()  # values come from the environment
    return DynamoNotificationStore(
        table=settings.notifications_table,
        tickets_table=settings.tickets_table,
        customers_table=settings.customers_table,
    )


def caller() -> Caller:
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    return caller_from_claims((authorizer.get("jwt") or {}).get("claims") or {})


def survey_view(survey: Survey) -> dict[str, Any]:
    return {
        "survey_id": survey.survey_id,
        "ticket_id": survey.ticket_id,
        "fault_code": survey.facts.fault_code,
        "title_en": survey.facts.title_en,
        "title_zh": survey.facts.title_zh,
        "status": survey.status,
        "sent_at": survey.sent_at.isoformat() if survey.sent_at else None,
        "rating": survey.rating,
        "comment": survey.comment,
        "answered_at": survey.answered_at.isoformat() if survey.answered_at else None,
    }


# Route functions stay undecorated otherwise: the resolver reads their annotations (the body
# model) from the function's own module globals.
@app.get("/surveys/<survey_id>")
def get_survey(survey_id: str) -> dict[str, Any]:
    who = caller()
    who.require_reader()
    survey = readable_survey(store(), survey_id, None if who.staff else who.customer_id)
    metrics.add_metric(name="SurveyRead", unit=MetricUnit.Count, value=1)
    return survey_view(survey)


@app.post("/surveys/<survey_id>/answer")
def post_answer(survey_id: str, answer: SurveyAnswer) -> dict[str, Any]:
    who = caller()
    if not who.customer or who.customer_id is None:
        raise Forbidden("only the customer who owns the device answers its survey")
    survey = answer_survey(store(), survey_id, who.customer_id, answer, datetime.now(UTC))
    metrics.add_metric(name="SurveyAnswered", unit=MetricUnit.Count, value=1)
    if survey.rating is not None and survey.rating <= 2:
        metrics.add_metric(name="FollowUpOpened", unit=MetricUnit.Count, value=1)
    logger.info("survey answered", extra={"survey_id": survey_id, "rating": survey.rating})
    return survey_view(survey)


def _error(status: HTTPStatus, exc: Exception) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"message": str(exc)},
    )


@app.exception_handler(ContentRejected)
def rejected_content(exc: ContentRejected) -> Response[Any]:
    # The API's own vocabulary: a body we cannot read is `malformed_body`, one we read but
    # cannot accept (numbers DynamoDB cannot store) is a `validation_error`.
    if exc.reason == MALFORMED_JSON:
        status, reason = HTTPStatus.BAD_REQUEST, "malformed_body"
    else:
        status, reason = HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error"
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"reason": reason, "message": exc.detail},
    )


@app.exception_handler(UnicodeDecodeError)
def undecodable(exc: UnicodeDecodeError) -> Response[Any]:
    return _error(HTTPStatus.BAD_REQUEST, ValueError("the body is not UTF-8 JSON"))


@app.exception_handler(SurveyNotFound)
@app.exception_handler(NotYourSurvey)
def not_found(exc: Exception) -> Response[Any]:
    return _error(HTTPStatus.NOT_FOUND, SurveyNotFound(app.current_event.path.split("/")[2]))


@app.exception_handler(Forbidden)
def forbidden(exc: Exception) -> Response[Any]:
    return _error(HTTPStatus.FORBIDDEN, exc)


@app.exception_handler(AlreadyAnswered)
@app.exception_handler(SurveyNotOpen)
def conflict(exc: Exception) -> Response[Any]:
    return _error(HTTPStatus.CONFLICT, exc)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

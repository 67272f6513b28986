"""The error body every API function answers with, and the handlers they all share.

`ErrorBody` (`{"reason", "message", "detail"?}`) is the one error shape; each function maps its
own domain errors with `map_errors` (status and reason, the exception's text as the message) or,
where the answer needs more, a handler calling `error(...)`. The mapping of an exception to a
status lives in exactly one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from aftercare.domain.access import Forbidden, Unauthenticated
from aftercare.models.errors import ErrorBody
from aftercare.models.strict_json import MALFORMED_JSON, ContentRejected

UNAUTHORIZED_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["message"],
}
MEANINGS = {
    400: (
        "the body is not UTF-8 JSON or is JSON this API refuses, "
        "or the cursor is not one this API issued"
    ),
    403: "the caller's groups do not allow this",
    404: "no such resource, or not visible to the caller",
    409: "the resource is not in a state that allows this",
    422: "the request does not match this document",
    429: "too many attempts: locked until support resets it",
    502: "the request could not be handed on (to the device, or to a queue for a replay)",
}


def error(status: HTTPStatus, reason: str, message: str, **extra: Any) -> Response[str]:
    body = ErrorBody(reason=reason, message=message, **extra)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
    )


ErrorClasses = type[Exception] | tuple[type[Exception], ...]


def map_errors(
    app: ApiGatewayResolver, errors: Mapping[ErrorClasses, tuple[HTTPStatus, str]]
) -> None:
    """For each entry, a handler answering those exceptions with that status and reason."""
    for classes, (status, reason) in errors.items():
        handled = list(classes) if isinstance(classes, tuple) else classes
        app.exception_handler(handled)(_answer(status, reason))


def _answer(status: HTTPStatus, reason: str) -> Callable[[Exception], Response[str]]:
    def handle(exc: Exception) -> Response[str]:
        return error(status, reason, str(exc))

    return handle


def documented(success: int, description: str, *codes: int) -> dict[int, Any]:
    """OpenAPI responses: the route's return model on `success`, ErrorBody on the error codes."""
    responses: dict[int, Any] = {
        success: {"description": description},
        401: {
            "description": (
                "no or invalid token (API Gateway's JWT authorizer: `{message}`), or not an ID "
                "token (`reason` id_token_required)"
            ),
            "content": {"application/json": {"schema": UNAUTHORIZED_SCHEMA}},
        },
    }
    for code in (403, 404, 422, *codes):
        responses[code] = {
            "description": MEANINGS[code],
            "content": {"application/json": {"model": ErrorBody}},
        }
    return responses


def register_common(app: ApiGatewayResolver) -> None:
    """The handlers every API function shares: tokens, access, validation, unknown routes."""

    map_errors(
        app,
        {
            Unauthenticated: (HTTPStatus.UNAUTHORIZED, "id_token_required"),
            Forbidden: (HTTPStatus.FORBIDDEN, "forbidden"),
        },
    )

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response[str]:
        detail = [
            {"loc": list(e.get("loc", [])), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error(
            HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", "invalid request", detail=detail
        )

    @app.exception_handler(UnicodeDecodeError)
    def undecodable(exc: UnicodeDecodeError) -> Response[str]:
        return error(HTTPStatus.BAD_REQUEST, "malformed_body", "the body is not UTF-8 JSON")

    @app.exception_handler(ContentRejected)
    def rejected_content(exc: ContentRejected) -> Response[str]:
        # A body we cannot read is `malformed_body`; one we read but cannot accept (numbers
        # DynamoDB cannot store) is a `validation_error`.
        if exc.reason == MALFORMED_JSON:
            status, reason = HTTPStatus.BAD_REQUEST, "malformed_body"
        else:
            status, reason = HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error"
        detail = [{"loc": ["body"], "msg": exc.detail, "type": exc.reason}]
        return error(status, reason, exc.detail, detail=detail)

    @app.not_found
    def no_route(exc: Exception) -> Response[str]:
        return error(HTTPStatus.NOT_FOUND, "no_route", "no such route")

"""The resolver every function on `ServiceApi` is built from.

Both API functions (support API, surveys) start from `http_api()`: the strict body decoder,
OpenAPI validation, the caller resolved before every route (`aftercare.api.caller`), the shared
error handlers (`aftercare.api.errors`), decoded path parameters and the request id as the
logs' correlation id. Their entry points are the shared `aftercare.runtime.entry_point`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from aftercare.api.caller import authenticate
from aftercare.api.errors import register_common
from aftercare.models.strict_json import loads_strict
from aftercare.observability import logger


class HttpApiResolver(APIGatewayHttpResolver):
    """Path parameters decoded, as in API Gateway's `pathParameters`: Powertools matches the
    raw (percent-encoded) path, so a thing named `a:b` would otherwise arrive as `a%3Ab`.

    Powertools has no public hook for this: request validation runs before any middleware, on
    the values this method returns. tests/unit/test_api_resolver.py pins the method we override
    and its callers in the installed Powertools, and fails when an upgrade changes them.
    """

    def _convert_matches_into_route_keys(self, match: re.Match[str]) -> dict[str, str]:
        return {key: unquote(value) for key, value in match.groupdict().items()}


def http_api(*, public_paths: Iterable[str] = ()) -> HttpApiResolver:
    """A resolver for one function's routes on `ServiceApi`.

    Bodies go through the one strict decoder: deep nesting, unstorable numbers, NaN/Infinity
    and duplicate keys are a 400/422 with a reason, never a 500. Every route except
    `public_paths` knows its caller before it runs, or the request ends with 401/403.
    """
    app = HttpApiResolver(enable_validation=True, json_body_deserializer=loads_strict)
    app.use([correlate, authenticate(public_paths=public_paths)])
    register_common(app)
    return app


def correlate(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every log line of the request carries API Gateway's request id as its correlation id."""
    context = app.current_event.raw_event.get("requestContext") or {}
    logger.set_correlation_id(context.get("requestId"))
    return next_middleware(app)

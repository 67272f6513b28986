"""The resolver every function on `ServiceApi` is built from.

Both API functions (support API, surveys) start from `http_api()`: the strict body decoder,
OpenAPI validation, the caller resolved before every route (`aftercare.api.caller`), the shared
error handlers (`aftercare.api.errors`), decoded path parameters and the request id as the
logs' correlation id. Their entry points are the shared `aftercare.runtime.entry_point`.

A function's route groups (modules with an ``install(app)``, e.g. `aftercare.api.field_routes`)
can be left to the first request that needs them (`HttpApiResolver.include_on_first_use`): a
group's routes name their models and errors, which a start would otherwise define for every
route of the API (pydantic model classes cost ~0.3 ms each to define, ~150 in the support API).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from aftercare.api.caller import authenticate
from aftercare.api.errors import register_common
from aftercare.models.strict_json import loads_strict
from aftercare.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI


class HttpApiResolver(APIGatewayHttpResolver):
    """Path parameters decoded, as in API Gateway's `pathParameters`: Powertools matches the
    raw (percent-encoded) path, so a thing named `a:b` would otherwise arrive as `a%3Ab`.

    Powertools has no public hook for this: request validation runs before any middleware, on
    the values this method returns. tests/unit/test_api_resolver.py pins the method we override
    and its callers in the installed Powertools, and fails when an upgrade changes them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_groups: list[str] = []

    def _convert_matches_into_route_keys(self, match: re.Match[str]) -> dict[str, str]:
        return {key: unquote(value) for key, value in match.groupdict().items()}

    def include_on_first_use(self, *modules: str) -> None:
        """Route groups (modules with ``install(app)``) imported and installed, in this order,
        by the first request that no installed route matches, until one matches it; all of
        them before an OpenAPI document is made. Their routes must not overlap any other route
        of the app (tests/unit/test_api_route_groups.py holds the support API to that)."""
        self._pending_groups.extend(modules)

    def install_pending_groups(self) -> None:
        """Every route group still waiting, installed now."""
        while self._pending_groups:
            self._install_next_group()

    def _install_next_group(self) -> None:
        module = importlib.import_module(self._pending_groups.pop(0))
        module.install(self)

    def _matches(self, method: str, path: str) -> bool:
        routes = self._static_routes + self._dynamic_routes
        return any(r.method == method and r.rule.match(path) for r in routes)

    def _handle_not_found(self, method: str, path: str) -> ResponseBuilder:
        # Powertools' _resolve calls this when no installed route matches (method, path), the
        # path with its prefixes removed; tests/unit/test_api_resolver.py pins that call.
        while self._pending_groups:
            self._install_next_group()
            if self._matches(method, path):
                return self._resolve()
        return super()._handle_not_found(method, path)

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        self.install_pending_groups()
        return super().get_openapi_schema(*args, **kwargs)


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

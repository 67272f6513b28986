"""The one caller helper: every route of every API function learns who calls through here.

`authenticate` is installed as a resolver-wide middleware, so a route cannot forget it: before
any route runs, the JWT claims (already verified by API Gateway's JWT authorizer) become a
`Caller` via `caller_from_claims`, or the request ends with 401/403 in the shared error body.
Routes read the result with `current_caller(app)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from aftercare.domain.access import Caller, caller_from_claims

CALLER_KEY = "caller"

Middleware = Callable[[ApiGatewayResolver, NextMiddleware], Response[Any]]


def claims_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JWT claims of a payload-format-2.0 event ({} without an authorizer)."""
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    return (authorizer.get("jwt") or {}).get("claims") or {}


def authenticate(public_paths: Iterable[str] = ()) -> Middleware:
    """A middleware resolving the caller for every route except `public_paths`."""
    public = frozenset(public_paths)

    def middleware(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response[Any]:
        if app.current_event.path not in public:
            app.append_context(
                **{CALLER_KEY: caller_from_claims(claims_of(app.current_event.raw_event))}
            )
        return next_middleware(app)

    return middleware


def current_caller(app: ApiGatewayResolver) -> Caller:
    """The caller `authenticate` resolved for this request."""
    caller = app.context.get(CALLER_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError("the authenticate middleware is not installed on this resolver")
    return caller


class CallerRouter(APIGatewayHttpRouter):
    """A Router whose routes learn who calls with `router.caller()`.

    Powertools points an included Router at the last resolver that included it, and a process
    may hold several (tests, the OpenAPI generator): each request names its own resolver here
    instead, in a context variable a router-wide middleware sets for the request's duration."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._serving: ContextVar[ApiGatewayResolver] = ContextVar(name)
        self.use([self._remember_app])

    def _remember_app(
        self, app: ApiGatewayResolver, next_middleware: NextMiddleware
    ) -> Response[Any]:
        token = self._serving.set(app)
        try:
            return next_middleware(app)
        finally:
            self._serving.reset(token)

    def caller(self) -> Caller:
        """The caller of the request being served."""
        return current_caller(self._serving.get())

"""Troubleshooting guides and the customer's "I followed the guide" (self-service checked by the
device itself).

A Powertools Router included into the support API's one resolver (`functions/api/handler.py`
calls `install`), so these routes share its caller middleware, strict bodies, error body and
OpenAPI document. Errors map to HTTP here, once.
"""

from __future__ import annotations

from contextvars import ContextVar
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from aftercare.api.caller import current_caller
from aftercare.api.errors import documented, map_errors
from aftercare.domain.access import Caller
from aftercare.domain.guides import NoGuide, UnknownCode, load_guides
from aftercare.domain.rules import load_catalog
from aftercare.models.guides import GuideLanguage, GuideView
from aftercare.models.ids import FaultCode

router = APIGatewayHttpRouter()

# The resolver serving the request (see `aftercare.api.raised_routes`: an included Router points
# at the last resolver that included it; each request names its own here instead).
_serving: ContextVar[ApiGatewayResolver] = ContextVar("guide_routes_app")


def _remember_app(app: ApiGatewayResolver, next_middleware: NextMiddleware) -> Response[Any]:
    token = _serving.set(app)
    try:
        return next_middleware(app)
    finally:
        _serving.reset(token)


router.use([_remember_app])


def caller() -> Caller:
    return current_caller(_serving.get())


Lang = Annotated[str, Query(pattern=r"^(en|zh|zh-CN)$", description="en (default) or zh-CN")]
Model = Annotated[str, Query(pattern=r"^[A-Z0-9-]{1,32}$", description="the product model")]


def guide_for(code: str, model: str | None, lang: str) -> GuideView:
    """The guide for `code` (the model's own when it has one) in `lang`."""
    if load_catalog().lookup(code) is None:
        raise UnknownCode(f"{code} is not a catalog code (GET /symptoms lists them)")
    book = load_guides()
    guide = book.find(code, model)
    if guide is None:
        raise NoGuide(code, model)
    return guide.view(GuideLanguage.parse(lang), book.version)


@router.get(
    "/guides",
    summary="The troubleshooting guide for a fault code (and product model), in en or zh-CN",
    description=(
        "A model's own guide overrides the code's generic one. 404 `no_guide` when the code "
        "has none; 422 `unknown_code` for a code the catalog does not have, `code_required` "
        "without one."
    ),
    tags=["guides"],
    responses=documented(200, "the guide", 404, 422),
)
def guide_route(
    code: Annotated[FaultCode | None, Query(description="a catalog code (required)")] = None,
    model: Model | None = None,
    lang: Lang = "en",
) -> GuideView:
    caller().require_reader()
    if code is None:
        raise CodeRequired("the query parameter `code` is required (GET /symptoms lists codes)")
    return guide_for(code, model, lang)


class CodeRequired(ValueError):
    """GET /guides without a code."""


def install(app: ApiGatewayResolver) -> None:
    """Include the routes and map their errors on `app`."""
    app.include_router(router)
    map_errors(
        app,
        {
            NoGuide: (HTTPStatus.NOT_FOUND, "no_guide"),
            UnknownCode: (HTTPStatus.UNPROCESSABLE_ENTITY, "unknown_code"),
            CodeRequired: (HTTPStatus.UNPROCESSABLE_ENTITY, "code_required"),
        },
    )

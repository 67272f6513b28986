"""The resolver every API function is built from decodes path parameters, through the one
Powertools method it overrides; these tests pin that method and its callers in the installed
Powertools, so an upgrade that renames, re-signs or stops calling it fails here, not in use."""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any

from aftercare.api.resolver import HttpApiResolver, http_api
from aftercare.models.api import Thing
from aftercare.observability import logger
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam

from tests.fakes.http_api import http_api_event

HOOK = "_convert_matches_into_route_keys"
STAFF = {"token_use": "id", "sub": "s-1", "cognito:username": "u", "cognito:groups": "[engineers]"}


def get(app: HttpApiResolver, raw_path: str) -> tuple[int, Any]:
    event = http_api_event("GET", raw_path, STAFF)
    response = app.resolve(event, None)
    return response["statusCode"], json.loads(response["body"])


def echo_app() -> HttpApiResolver:
    app = http_api()

    @app.get("/things/<thing>")
    def show(thing: Annotated[Thing, PathParam()]) -> dict[str, str]:
        return {"thing": thing}

    return app


def test_a_percent_encoded_path_parameter_reaches_the_route_decoded():
    # Given a thing whose name has a character clients must encode
    # When it is asked for by its encoded name
    status, body = get(echo_app(), "/things/rt%3A0001")
    # Then validation and the route both see the name API Gateway's pathParameters would carry
    assert (status, body) == (200, {"thing": "rt:0001"})


def test_an_encoded_slash_stays_inside_its_parameter():
    # Decoding happens after matching, so %2F never adds a path segment (and fails validation)
    status, body = get(echo_app(), "/things/a%2Fb")
    assert (status, body["reason"]) == (422, "validation_error")


def test_the_overridden_hook_is_still_powertools_own_match_to_route_keys():
    base = getattr(ApiGatewayResolver, HOOK)
    assert list(inspect.signature(base).parameters) == ["self", "match"]
    assert inspect.getsource(base).rstrip().endswith("return match.groupdict()")
    assert getattr(HttpApiResolver, HOOK) is not base


def test_powertools_still_builds_route_arguments_through_the_hook():
    for caller in (ApiGatewayResolver._resolve, ApiGatewayResolver._resolve_async):
        source = inspect.getsource(caller)
        assert f"route_keys = self.{HOOK}(match_results)" in source, caller.__name__


def test_the_request_id_is_the_logs_correlation_id():
    event = http_api_event("GET", "/things/rt-0001", STAFF)
    echo_app().resolve(event, None)
    assert logger.get_correlation_id() == event["requestContext"]["requestId"]

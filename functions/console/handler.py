"""Web console (HTTP API `ServiceApi`, no authorizer): the browser app's static files.

    GET /console                          index.html (no-cache)
    GET /console/config.json              sign-in endpoint, app client id, region (no-cache)
    GET /console/assets/{digest}/{file}   the app's ES modules and styles (immutable, a year)

Static files only: every data call the app makes goes from the browser to the JWT-protected
routes of the same API with the signed-in user's ID token. The lookup, cache headers and the
refusal of anything but the files shipped in `static/` are `aftercare.static_site`; README
"Web console" says why the API serves it rather than S3 + CloudFront.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aftercare.observability import logger, metrics
from aftercare.runtime import entry_point
from aftercare.settings import EnvSettings, load_settings
from aftercare.static_site import StaticSite, read_files
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

STATIC_DIR = Path(__file__).resolve().parent / "static"


class Settings(EnvSettings):
    cognito_endpoint: str  # https://cognito-idp.<region>.amazonaws.com/ (locally: moto)
    user_pool_client_id: str
    aws_region: str


@cache
def deps() -> StaticSite:
    settings = load_settings(Settings)  # values come from the environment
    config = {
        "cognito_endpoint": settings.cognito_endpoint,
        "client_id": settings.user_pool_client_id,
        "region": settings.aws_region,
        "api_base": "",  # same origin: the console is a route of the API it calls
    }
    return StaticSite(read_files(STATIC_DIR), config)


@entry_point
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = deps().answer(event["requestContext"]["http"]["method"], event["rawPath"])
    # Each request is an API request and an invocation (README "Web console": the cost per
    # asset request); a rising count means browsers are not caching the assets.
    metrics.add_metric(name="ConsoleRequests", unit=MetricUnit.Count, value=1)
    if answer.status != 200:
        metrics.add_metric(name="ConsoleNotFound", unit=MetricUnit.Count, value=1)
        logger.info("console: %d for %s", answer.status, event["rawPath"])
    return answer.as_http_response()

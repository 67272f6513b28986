"""The Lambda proxy integration of the local gateway: the payload format 2.0 event for a request,
the synchronous invoke of the function's worker, and the HTTP reply for what it returned (API
Gateway's own `{"message": ...}` replies included)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.client import HTTPConnection, HTTPException
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from infra.local.apigw_routes import GatewaySpec, RouteSpec

logger = logging.getLogger("infra.local.apigw")

TEXT_TYPES: Final = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")


def claim_text(value: Any) -> str:
    """A claim as API Gateway passes it to the function: always a string."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]  # lower-case names, repeated values joined with ","
    body: bytes
    source_ip: str


def _is_text(content_type: str) -> bool:
    return any(marker in content_type.lower() for marker in TEXT_TYPES)


def _body_fields(request: Request) -> dict[str, Any]:
    if not request.body:
        return {"isBase64Encoded": False}
    if _is_text(request.headers.get("content-type", "")):
        try:
            return {"body": request.body.decode("utf-8"), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"body": base64.b64encode(request.body).decode("ascii"), "isBase64Encoded": True}


def _query_parameters(raw_query: str) -> dict[str, str] | None:
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return {name: ",".join(values) for name, values in params.items()} or None


def http_event(
    spec: GatewaySpec,
    route: RouteSpec,
    request: Request,
    path_params: Mapping[str, str],
    claims: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The Lambda proxy integration event, payload format 2.0."""
    now = datetime.now(UTC)
    headers = {k: v for k, v in request.headers.items() if k != "cookie"}
    cookies = [c.strip() for c in request.headers.get("cookie", "").split(";") if c.strip()]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": spec.account_id,
            "apiId": spec.api_id,
            "domainName": request.headers.get("host", "localhost"),
            "domainPrefix": request.headers.get("host", "localhost").split(".")[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": request.headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": route.route_key,
            "stage": spec.stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        **_body_fields(request),
    }
    if cookies:
        event["cookies"] = cookies
    if query := _query_parameters(request.raw_query):
        event["queryStringParameters"] = query
    if path_params:
        event["pathParameters"] = dict(path_params)
    if claims is not None:
        event["requestContext"]["authorizer"] = {
            "jwt": {"claims": {k: claim_text(v) for k, v in claims.items()}, "scopes": None}
        }
    return event


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def gateway_reply(status: HTTPStatus, message: str) -> Reply:
    body = json.dumps({"message": message}).encode()
    return Reply(int(status), {"content-type": "application/json"}, body)


def integration_reply(result: Any) -> Reply:
    """The HTTP response for a function's (format 2.0) return value."""
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return Reply(200, {"content-type": "application/json"}, text.encode())
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name).lower()] = ",".join(map(str, values))
    if result.get("cookies"):
        headers["set-cookie"] = "; ".join(map(str, result["cookies"]))
    headers.setdefault("content-type", "application/json")
    return Reply(int(result["statusCode"]), headers, body)


def invoke(route: RouteSpec, event: Mapping[str, Any]) -> Reply:
    """Call the function's worker synchronously (RequestResponse)."""
    parts = urlsplit(route.invoke_url)
    connection = HTTPConnection(parts.netloc, timeout=route.timeout_ms / 1000)
    try:
        connection.request(
            "POST",
            parts.path,
            body=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
        function_error = response.getheader("X-Amz-Function-Error")
    except TimeoutError:
        logger.error("%s: %s timed out", route.route_key, route.function_name)
        return gateway_reply(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")
    except (OSError, HTTPException) as exc:
        logger.error("%s: cannot invoke %s: %s", route.route_key, route.function_name, exc)
        return gateway_reply(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
    finally:
        connection.close()
    if response.status != 200 or function_error:
        logger.error("%s: %s failed: %s", route.route_key, route.function_name, payload[:2000])
        return gateway_reply(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
    try:
        return integration_reply(json.loads(payload) if payload else None)
    except (ValueError, TypeError, KeyError) as exc:
        logger.error("%s: malformed Lambda response: %s", route.route_key, exc)
        return gateway_reply(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")

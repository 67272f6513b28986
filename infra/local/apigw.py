"""Local stand-in for one API Gateway HTTP API: routes, JWT authorizer, Lambda proxy (2.0).

Each request is matched against the API's routes (every function's `HttpApi` event on the API:
static paths before `{param}` paths before `{proxy+}`, then `$default`), authorized like the
HTTP API JWT authorizer (the token from `Authorization`, with or without `Bearer `, verified
with the issuer's JWKS: RS256 signature, `iss`, `exp`/`nbf`, and `aud` or `client_id` in the
audience; so Cognito access tokens pass, as in AWS, and the functions refuse them: they accept
ID tokens only, see `aftercare.api.caller`), turned into the payload format 2.0 event and sent
synchronously to the function's local worker. The function's answer becomes the HTTP response
(a dict with `statusCode`, or any other JSON value as a 200).

API Gateway's own answers are mirrored: 404 `{"message":"Not Found"}` (no route),
401 `{"message":"Unauthorized"}`, 500 `{"message":"Internal Server Error"}` (function error),
503 `{"message":"Service Unavailable"}` (integration timeout), 413 (body over 10 MB).
Claims reach the function as strings, lists rendered as `[a b]`, as API Gateway does.

Process: ``python -m infra.local.apigw --spec-file PATH``; prints ``READY {"url": ...}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
from pydantic import Field

from infra.local.process import SpecModel, configure_logging, load_spec
from infra.local.serving import JsonRequestHandler, LocalHttpServer, serve_until_stopped

logger = logging.getLogger("infra.local.apigw")

MAX_BODY_BYTES: Final = 10 * 1024 * 1024
JWKS_CACHE_S: Final = 300
TEXT_TYPES: Final = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------
class AuthorizerSpec(SpecModel):
    issuer: str
    audience: list[str]
    identity_source: str = "$request.header.Authorization"
    jwks_url: str


class RouteSpec(SpecModel):
    route_key: str
    method: str
    path: str
    function: str
    function_name: str
    invoke_url: str
    authorizer: str | None = None
    timeout_ms: int = Field(default=30_000, ge=50, le=30_000)


class GatewaySpec(SpecModel):
    api_id: str
    stage: str = "$default"
    region: str
    account_id: str = "123456789012"
    authorizers: dict[str, AuthorizerSpec] = Field(default_factory=dict)
    routes: list[RouteSpec]
    host: str = "127.0.0.1"
    port: int = 0


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    spec: RouteSpec
    pattern: re.Pattern[str] | None  # None: $default
    rank: tuple[int, int, int]

    def matches(self, method: str, path: str) -> dict[str, str] | None:
        if self.pattern is None:
            return {}
        if self.spec.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {k: unquote(v) for k, v in found.groupdict().items()}


def compile_route(spec: RouteSpec) -> Route:
    """A route with its path regex and its precedence (lower sorts first)."""
    if spec.route_key == "$default":
        return Route(spec, None, (3, 0, 0))
    regex, variables, greedy = "", 0, 0
    for segment in spec.path.strip("/").split("/"):
        variable = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
        if variable is None:
            regex += "/" + re.escape(segment)
        elif variable[2]:
            regex += f"/(?P<{variable[1]}>.+)"
            greedy += 1
        else:
            regex += f"/(?P<{variable[1]}>[^/]+)"
            variables += 1
    any_method = 1 if spec.method == "ANY" else 0
    return Route(spec, re.compile(regex or "/"), (greedy, variables, any_method))


def find_route(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]]:
    for route in routes:
        params = route.matches(method, path)
        if params is not None:
            return route, params
    raise LookupError(path)


# ---------------------------------------------------------------------------------------------
# JWT authorizer
# ---------------------------------------------------------------------------------------------
class Unauthorized(Exception):
    """The request does not carry a token this authorizer accepts (the reason is logged)."""


class JwtAuthorizer:
    def __init__(self, spec: AuthorizerSpec) -> None:
        self.spec = spec
        self._keys = jwt.PyJWKClient(spec.jwks_url, cache_keys=True, lifespan=JWKS_CACHE_S)

    def claims(self, headers: Mapping[str, str]) -> dict[str, Any]:
        token = self._token(headers)
        try:
            key = self._keys.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.spec.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized(str(exc)) from exc
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if self.spec.audience and not set(map(str, audiences)) & set(self.spec.audience):
            raise Unauthorized(f"audience {audience!r} is not accepted")
        return dict(claims)

    def _token(self, headers: Mapping[str, str]) -> str:
        source = self.spec.identity_source
        if not source.startswith("$request.header."):
            raise Unauthorized(f"identity source {source} is not emulated")
        value = headers.get(source.removeprefix("$request.header.").lower(), "").strip()
        if not value:
            raise Unauthorized("no token")
        scheme, _, rest = value.partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest else value


def claim_text(value: Any) -> str:
    """A claim as API Gateway passes it to the function: always a string."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# ---------------------------------------------------------------------------------------------
# Events and responses
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# The gateway
# ---------------------------------------------------------------------------------------------
class Gateway:
    """Routes, authorizers and integrations of one HTTP API."""

    def __init__(self, spec: GatewaySpec) -> None:
        self.spec = spec
        self.routes = sorted((compile_route(r) for r in spec.routes), key=lambda r: r.rank)
        self.authorizers = {name: JwtAuthorizer(a) for name, a in spec.authorizers.items()}

    def handle(self, request: Request) -> Reply:
        try:
            route, params = find_route(self.routes, request.method, request.raw_path)
        except LookupError:
            return gateway_reply(HTTPStatus.NOT_FOUND, "Not Found")
        claims = None
        if route.spec.authorizer is not None:
            try:
                claims = self.authorizers[route.spec.authorizer].claims(request.headers)
            except Unauthorized as exc:
                logger.info("%s %s: unauthorized: %s", request.method, request.raw_path, exc)
                return gateway_reply(HTTPStatus.UNAUTHORIZED, "Unauthorized")
        event = http_event(self.spec, route.spec, request, params, claims)
        return invoke(route.spec, event)


class _Server(LocalHttpServer):
    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway


class _Handler(JsonRequestHandler):
    server_version = "aftercare-local-apigw"
    logger = logger

    def _serve(self) -> None:
        started = time.monotonic()
        if int(self.headers.get("Content-Length") or 0) > MAX_BODY_BYTES:
            self._reply(gateway_reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Too Long"))
            self.close_connection = True
            return
        body = self.read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            raw_path=parts.path or "/",
            raw_query=parts.query,
            headers=headers,
            body=body,
            source_ip=self.client_address[0],
        )
        reply = cast(_Server, self.server).gateway.handle(request)
        self._reply(reply)
        logger.info(
            "%s %s -> %d (%.0f ms)",
            self.command,
            parts.path,
            reply.status,
            (time.monotonic() - started) * 1000,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def do_HEAD(self) -> None:
        self._serve()

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one HTTP API locally")
    parser.add_argument("--spec-file", type=Path, required=True)
    args = parser.parse_args(argv)
    configure_logging("apigw")
    spec = load_spec(GatewaySpec, args.spec_file)
    server = _Server((spec.host, spec.port), Gateway(spec))
    serve_until_stopped(server, "apigw")
    return 0


if __name__ == "__main__":
    sys.exit(main())

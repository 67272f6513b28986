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

Spec and routing: `infra.local.apigw_routes`; the authorizer: `infra.local.apigw_auth`; events,
invokes and replies: `infra.local.apigw_events`.

Process: ``python -m infra.local.apigw --spec-file PATH``; prints ``READY {"url": ...}``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Final, cast
from urllib.parse import urlsplit

from infra.local.apigw_auth import JwtAuthorizer, Unauthorized
from infra.local.apigw_events import Reply, Request, gateway_reply, http_event, invoke
from infra.local.apigw_routes import GatewaySpec, compile_route, find_route
from infra.local.process import configure_logging, load_spec
from infra.local.serving import JsonRequestHandler, LocalHttpServer, serve_until_stopped

logger = logging.getLogger("infra.local.apigw")

MAX_BODY_BYTES: Final = 10 * 1024 * 1024


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

"""The events `ServiceApi` hands its functions, built as the local gateway builds them
(`infra.local.apigw.http_event`, payload format 2.0), for tests that call a resolver directly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.local.apigw_events import Request, http_event
from infra.local.apigw_routes import GatewaySpec, RouteSpec


def http_api_event(
    method: str,
    path: str,
    claims: Mapping[str, Any] | None,
    body: Any = None,
    *,
    path_params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`method path` (`path` may end in `?query`) with the JWT authorizer's verified `claims`
    (None: a route without the authorizer); `body` is sent as JSON unless it is bytes."""
    raw_path, _, query = path.partition("?")
    route = RouteSpec(
        route_key=f"{method} {raw_path}",
        method=method,
        path=raw_path,
        function="f",
        function_name="f",
        invoke_url="http://unused/",
    )
    if body is None:
        payload = b""
    else:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request(
        method=method,
        raw_path=raw_path,
        raw_query=query,
        headers={"content-type": "application/json"},
        body=payload,
        source_ip="127.0.0.1",
    )
    spec = GatewaySpec(api_id="local", region="us-east-1", routes=[route])
    return http_event(spec, route, request, path_params or {}, claims)

"""An HTTP API as the local gateway sees it: its spec (routes, JWT authorizers) and how a request
finds its route (static paths before `{param}` paths before `{proxy+}`, then `$default`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from pydantic import Field

from infra.local.process import SpecModel


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

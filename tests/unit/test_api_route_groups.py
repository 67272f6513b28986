"""Route groups installed by their first request (`HttpApiResolver.include_on_first_use`).

The support API leaves its route groups (field service, raised tickets, guides, incidents) to
the first request that needs them, so that a start defines only the models of the routes it
keeps. These pin what that must not change: every request still reaches the route it reached
when every group was installed at import, the OpenAPI document has every route, a group is
installed once, and every group's settings are still validated by the first invocation.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from types import ModuleType
from typing import Any

import pytest
from aftercare.api.resolver import HttpApiResolver, http_api
from aftercare.settings import MissingSettings
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import load_handler

STAFF = {"token_use": "id", "sub": "s-1", "cognito:username": "u", "cognito:groups": "[engineers]"}
GROUPS = (
    "aftercare.api.field_routes",
    "aftercare.api.raised_routes",
    "aftercare.api.guide_routes",
    "aftercare.api.incident_routes",
)


def routes(app: HttpApiResolver) -> list[Any]:
    return app._static_routes + app._dynamic_routes


def sample_path(openapi_path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", openapi_path)


def group_app(monkeypatch: pytest.MonkeyPatch, installed: list[str]) -> HttpApiResolver:
    """An app with two fake groups, /a and /b, that record their installation."""
    app = http_api(public_paths=["/a", "/b", "/missing"])
    for name, path in (("fake_group_a", "/a"), ("fake_group_b", "/b")):
        module = ModuleType(name)

        def install(target: HttpApiResolver, name: str = name, path: str = path) -> None:
            installed.append(name)

            @target.get(path)
            def route() -> dict[str, str]:
                return {"served": name}

        module.install = install  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
    app.include_on_first_use("fake_group_a", "fake_group_b")
    return app


def get(app: HttpApiResolver, path: str) -> tuple[int, Any]:
    response = app.resolve(http_api_event("GET", path, STAFF), None)
    return response["statusCode"], json.loads(response["body"])


def test_a_group_is_installed_by_the_first_request_to_its_routes_and_only_once(monkeypatch):
    installed: list[str] = []
    app = group_app(monkeypatch, installed)
    # Given nothing installed at start, when /a is asked for, then group a serves it alone
    assert installed == []
    assert get(app, "/a") == (200, {"served": "fake_group_a"})
    assert installed == ["fake_group_a"]
    # ...and asking again installs nothing more; /b installs group b
    assert get(app, "/a") == (200, {"served": "fake_group_a"})
    assert get(app, "/b") == (200, {"served": "fake_group_b"})
    assert installed == ["fake_group_a", "fake_group_b"]


def test_a_path_no_group_has_is_still_a_404_after_every_group_is_installed(monkeypatch):
    installed: list[str] = []
    app = group_app(monkeypatch, installed)
    status, _ = get(app, "/missing")
    assert status == 404
    assert installed == ["fake_group_a", "fake_group_b"]


def test_the_openapi_document_installs_every_group_first(monkeypatch):
    installed: list[str] = []
    app = group_app(monkeypatch, installed)
    document = json.loads(app.get_openapi_json_schema(title="t", version="1"))
    assert {"/a", "/b"} <= set(document["paths"])
    assert installed == ["fake_group_a", "fake_group_b"]


def test_powertools_still_calls_the_not_found_hook_with_the_unmatched_method_and_path():
    # HttpApiResolver overrides this private hook: an upgrade that renames or stops calling it
    # must fail here, not leave a group's routes unreachable
    hook = ApiGatewayResolver._handle_not_found
    assert list(inspect.signature(hook).parameters) == ["self", "method", "path"]
    assert "return self._handle_not_found(method=method, path=path)" in inspect.getsource(
        ApiGatewayResolver._resolve
    )
    assert HttpApiResolver._handle_not_found is not hook


def test_no_support_api_route_overlaps_another_so_lazy_groups_route_as_before():
    # Given the support API with every group installed (as at import before)
    api = load_handler("api", "route_groups_api")
    api.app.install_pending_groups()
    every = routes(api.app)
    owners = {r.func.__module__ for r in every}
    assert set(GROUPS) <= owners
    # Then each route's own path is matched by that route alone: whichever order the groups
    # are installed in, a request reaches the route it reached before
    for route in every:
        path = sample_path(route.openapi_path)
        matching = [r for r in every if r.method == route.method and r.rule.match(path)]
        assert matching == [route], f"{route.method} {route.openapi_path}"


def test_a_support_api_request_to_a_group_installs_that_group(monkeypatch):
    # Given a fresh support API (no group installed)
    api = load_handler("api", "route_groups_api_fresh")
    before = {r.func.__module__ for r in routes(api.app)}
    assert before.isdisjoint(GROUPS)
    # When the incident listing is asked for without a token
    response = api.app.resolve(http_api_event("GET", "/incidents", None), None)
    # Then the caller check answers (the route exists), with the incident routes installed
    assert response["statusCode"] == 401
    after = {r.func.__module__ for r in routes(api.app)}
    assert "aftercare.api.incident_routes" in after


def test_a_missing_route_group_setting_fails_the_first_invocation_with_its_name(monkeypatch):
    # Given the support API deployed without the field table (only field routes use it)
    api = load_handler("api", "route_groups_api_settings")
    monkeypatch.setattr(api, "deps", lambda: None)
    monkeypatch.delenv("FIELD_TABLE", raising=False)
    for name in ("TICKETS_TABLE", "DEVICES_TABLE", "CUSTOMERS_TABLE", "INVENTORY_TABLE"):
        monkeypatch.setenv(name, name.lower())
    for name, value in (("IOT_DATA_ENDPOINT", ""), ("DIAGNOSTICS_TIMEOUT_S", "60")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REPEAT_WINDOW_DAYS", "30")
    monkeypatch.setenv("HOLD_HOURS", "72")
    api.route_group_settings.cache_clear()
    # When its first request (to any route) arrives, then it fails naming the variable
    with pytest.raises(MissingSettings, match="FIELD_TABLE is missing"):
        api.route_group_settings()

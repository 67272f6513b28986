"""The local stack's part in the web console: the moto server answers the browser's CORS like
Cognito's public endpoint, and the state file names the console's URL."""

from __future__ import annotations

from typing import Any

from infra.local.api_stack import api_state
from infra.local.moto_cors import CorsApp


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls.append(environ)
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.1")])
        return [b"{}"]


def run(app: CorsApp, environ: dict[str, Any]) -> tuple[str, dict[str, str]]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    b"".join(app(environ, start_response))
    return seen["status"], seen["headers"]


def test_a_preflight_is_answered_without_reaching_moto():
    # Given the console's browser asking whether it may POST to Cognito with X-Amz-Target
    moto = Recorder()
    status, headers = run(
        CorsApp(moto),
        {
            "REQUEST_METHOD": "OPTIONS",
            "HTTP_ORIGIN": "http://127.0.0.1:5000",
            "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
            "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "content-type,x-amz-target",
        },
    )
    # Then it may, and moto (which cannot route an OPTIONS without a target) is not asked
    assert status.startswith("204")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "content-type,x-amz-target"
    assert moto.calls == []


def test_a_browser_request_gets_the_allow_origin_header_and_sdk_requests_are_untouched():
    moto = Recorder()
    post = {"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "X.InitiateAuth"}
    _, from_browser = run(CorsApp(moto), post | {"HTTP_ORIGIN": "http://127.0.0.1:5000"})
    _, from_sdk = run(CorsApp(moto), post)
    assert from_browser["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in from_sdk
    assert len(moto.calls) == 2


def test_an_options_request_that_is_not_a_preflight_goes_to_moto():
    moto = Recorder()
    run(CorsApp(moto), {"REQUEST_METHOD": "OPTIONS"})
    assert len(moto.calls) == 1


def test_the_state_file_names_the_console_when_the_template_has_it():
    apis = {"ServiceApi": "http://127.0.0.1:4000"}
    with_console = api_state(apis, {"ConsoleFunction": "aftercare-console-local"})
    assert with_console["console_url"] == "http://127.0.0.1:4000/console"
    assert "console_url" not in api_state(apis, {})
    assert api_state({}, {"ConsoleFunction": "x"}) == {}

"""CORS on the local moto server, as AWS's public endpoints answer it: the web console's browser
calls Cognito's `InitiateAuth` directly (cognito-idp answers CORS in AWS), and moto's own CORS
never runs for a preflight, whose OPTIONS request has no `X-Amz-Target` to route it by.

A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is answered here, without
taking the serial server's lock; every other response to a request with an `Origin` gets
`Access-Control-Allow-Origin: *` and the AWS request-id headers exposed. Any origin is allowed:
the server listens on loopback only and its API needs no credentials (dummy keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from infra.local.moto_forward import StartResponse, WsgiApp

PREFLIGHT_MAX_AGE_S: Final = "600"
EXPOSED: Final = "x-amzn-requestid,x-amzn-errortype,x-amzn-errormessage,date"


def preflight_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The answer's headers to a preflight: the asked method and headers are allowed."""
    return [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "POST")),
        (
            "Access-Control-Allow-Headers",
            environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "content-type,x-amz-target"),
        ),
        ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE_S),
        ("Content-Length", "0"),
    ]


def is_preflight(environ: dict[str, Any]) -> bool:
    return (
        environ.get("REQUEST_METHOD") == "OPTIONS"
        and "HTTP_ORIGIN" in environ
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
    )


class CorsApp:
    """`app` with browser requests allowed from any origin."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if is_preflight(environ):
            start_response("204 No Content", preflight_headers(environ))
            return [b""]
        if "HTTP_ORIGIN" not in environ:
            return self.app(environ, start_response)

        def with_cors(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            names = {name.lower() for name, _ in headers}
            extra = [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Expose-Headers", EXPOSED),
            ]
            return start_response(
                status, headers + [h for h in extra if h[0].lower() not in names], *rest
            )

        return self.app(environ, with_cors)

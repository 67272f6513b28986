"""The local HTTP API gateway: route precedence, the JWT authorizer, Lambda proxy replies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from infra.local.apigw_auth import JwtAuthorizer, Unauthorized
from infra.local.apigw_events import integration_reply
from infra.local.apigw_routes import AuthorizerSpec, RouteSpec, compile_route, find_route

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test"
CLIENT = "client-123"


def route(key: str) -> RouteSpec:
    method, _, path = key.partition(" ")
    return RouteSpec(
        route_key=key,
        method=method if path else "ANY",
        path=path or key,
        function="F",
        function_name="f",
        invoke_url="http://127.0.0.1:1/invoke",
    )


ROUTES = sorted(
    (
        compile_route(route(k))
        for k in (
            "$default",
            "GET /tickets/{ticket_id}",
            "GET /tickets/mine",
            "POST /tickets/{ticket_id}/diagnostics",
            "ANY /files/{path+}",
        )
    ),
    key=lambda r: r.rank,
)


@pytest.mark.parametrize(
    ("method", "path", "expected", "params"),
    [
        ("GET", "/tickets/mine", "GET /tickets/mine", {}),
        ("GET", "/tickets/T-1", "GET /tickets/{ticket_id}", {"ticket_id": "T-1"}),
        ("GET", "/tickets/T%2D1", "GET /tickets/{ticket_id}", {"ticket_id": "T-1"}),
        ("POST", "/tickets/T-1/diagnostics", "POST /tickets/{ticket_id}/diagnostics", None),
        ("DELETE", "/files/a/b/c", "ANY /files/{path+}", {"path": "a/b/c"}),
        ("GET", "/tickets/T-1/diagnostics", "$default", {}),
    ],
)
def test_routes_match_like_api_gateway(method, path, expected, params):
    # Static paths win over {param} paths, which win over greedy ones, then $default
    found, values = find_route(ROUTES, method, path)
    assert found.spec.route_key == expected
    if params is not None:
        assert values == params


def test_no_route_without_default_is_not_found():
    routes = [compile_route(route("GET /me"))]
    with pytest.raises(LookupError):
        find_route(routes, "POST", "/me")


def test_function_replies_become_http_responses():
    reply = integration_reply({"statusCode": 422, "headers": {"X-A": "1"}, "body": '{"a":1}'})
    assert (reply.status, reply.headers["x-a"], reply.body) == (422, "1", b'{"a":1}')
    assert integration_reply({"ok": True}).body == b'{"ok": true}'


# --------------------------------------------------------------------------- JWT


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def token(key: rsa.RSAPrivateKey, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "u", "iat": now, "exp": now + 600}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def authorizer(jwks_url: str) -> JwtAuthorizer:
    return JwtAuthorizer(AuthorizerSpec(issuer=ISSUER, audience=[CLIENT], jwks_url=jwks_url))


def test_a_valid_token_passes_with_or_without_bearer(authorizer, key):
    good = token(key, **{"cognito:groups": ["engineers"]})
    assert authorizer.claims({"authorization": f"Bearer {good}"})["cognito:groups"] == ["engineers"]
    assert authorizer.claims({"authorization": good})["sub"] == "u"


def test_an_access_token_is_matched_on_client_id(authorizer, key):
    access = token(key, aud=None, client_id=CLIENT)
    assert authorizer.claims({"authorization": access})["client_id"] == CLIENT


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"},
        {"aud": "someone-else"},
        {"exp": -10},
        {"nbf": 600},
    ],
)
def test_tokens_from_elsewhere_or_out_of_date_are_refused(authorizer, key, overrides):
    # Times are offsets from now, taken when the test runs (a long suite collects minutes before).
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in overrides.items()}
    with pytest.raises(Unauthorized):
        authorizer.claims({"authorization": token(key, **claims)})


def test_a_token_signed_by_another_key_or_missing_is_refused(authorizer):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthorized):
        authorizer.claims({"authorization": token(stranger)})
    with pytest.raises(Unauthorized):
        authorizer.claims({})

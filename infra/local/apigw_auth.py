"""The HTTP API JWT authorizer, locally: the token from the identity source (with or without
`Bearer `), verified with the issuer's JWKS (RS256, `iss`, `exp`/`nbf`, and `aud` or
`client_id` in the audience)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import jwt

from infra.local.apigw_routes import AuthorizerSpec

JWKS_CACHE_S: Final = 300


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

"""Local provisioning of the HTTP API side: Cognito user pools, app clients and groups (in moto),
`AWS::Serverless::HttpApi` (served by `infra.local.apigw`), and the seeded local users.

An HttpApi's routes are the `HttpApi` events of every function in the template whose `ApiId`
refers to it (any function, not only one), each with the API's default authorizer unless the
event says `Auth: {Authorizer: NONE}` or names another. JWT authorizers keep their issuer and
audience from the template; locally the keys come from the moto pool's JWKS
(`<moto>/<pool id>/.well-known/jwks.json`), so tokens carry the `iss` AWS would put in them.

Properties without local behaviour (MFA, e-mail settings, logging...) are accepted as they are;
anything else stops start-up naming it, like the other provisioners.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from infra.local.cfn_yaml import TemplateError
from infra.local.provision_context import moto_client, moto_endpoint
from infra.local.template import Resolver, Resource, Template

log = logging.getLogger(__name__)

HTTP_API_TYPE: Final = "AWS::Serverless::HttpApi"
LOCAL_PASSWORD: Final = "Aftercare-local-1"  # noqa: S105 - documented local-only password
COGNITO_ISSUER: Final = re.compile(
    r"^https://cognito-idp\.[a-z0-9-]+\.amazonaws\.com/(?P<pool>[\w-]+)$"
)


class ProvisionContext(Protocol):
    """What these provisioners need from `infra.local.provision_context.StackContext`."""

    template: Template
    resolver: Resolver
    region: str
    endpoint_url: str
    clients: Any
    result: Any


def _cognito(context: ProvisionContext) -> Any:
    """Cognito beside the provisioner's other clients (their endpoint; AWS's under mock_aws)."""
    return cognito_client(moto_endpoint(context.clients.sqs), context.region)


def cognito_client(endpoint_url: str | None, region: str) -> Any:
    return moto_client("cognito-idp", endpoint_url, region)


def _check(resource: Resource, applied: frozenset[str], ignored: frozenset[str]) -> None:
    unknown = sorted(set(resource.properties) - applied - ignored)
    if unknown:
        raise TemplateError(f"property {unknown} is not supported locally")


# --------------------------------------------------------------------------------------------
# Cognito
# --------------------------------------------------------------------------------------------

_POOL_PASSED: Final = frozenset(
    {
        "Schema",
        "Policies",
        "AdminCreateUserConfig",
        "UsernameConfiguration",
        "AutoVerifiedAttributes",
        "UsernameAttributes",
        "AliasAttributes",
        "MfaConfiguration",
        "AccountRecoverySetting",
        "UserPoolTags",
        "DeletionProtection",
    }
)
_POOL_IGNORED: Final = frozenset(
    {
        "EmailConfiguration",
        "SmsConfiguration",
        "EmailVerificationMessage",
        "EmailVerificationSubject",
        "SmsAuthenticationMessage",
        "SmsVerificationMessage",
        "VerificationMessageTemplate",
        "UserPoolAddOns",
        "DeviceConfiguration",
        "UserAttributeUpdateSettings",
        "UserPoolTier",
        "EnabledMfas",
    }
)


def user_pool_request(properties: Mapping[str, Any], default_name: str) -> dict[str, Any]:
    """`CreateUserPool` for resolved `AWS::Cognito::UserPool` properties."""
    request = {key: properties[key] for key in sorted(_POOL_PASSED & set(properties))}
    request["PoolName"] = properties.get("UserPoolName", default_name)
    return request


def provision_user_pool(context: ProvisionContext, resource: Resource) -> dict[str, Any]:
    _check(resource, _POOL_PASSED | {"UserPoolName"}, _POOL_IGNORED)
    properties = context.resolver.resolve(resource.properties)
    request = user_pool_request(properties, f"aftercare-local-{resource.logical_id}")
    pool = _cognito(context).create_user_pool(**request)
    pool_id = pool["UserPool"]["Id"]
    provider = f"cognito-idp.{context.region}.amazonaws.com/{pool_id}"
    log.info("created Cognito user pool %s (%s)", request["PoolName"], pool_id)
    return {
        "Ref": pool_id,
        "UserPoolId": pool_id,
        "Arn": pool["UserPool"]["Arn"],
        "ProviderName": provider,
        "ProviderURL": f"https://{provider}",
    }


_CLIENT_PASSED: Final = frozenset(
    {
        "ClientName",
        "UserPoolId",
        "GenerateSecret",
        "ExplicitAuthFlows",
        "PreventUserExistenceErrors",
        "IdTokenValidity",
        "AccessTokenValidity",
        "RefreshTokenValidity",
        "TokenValidityUnits",
        "ReadAttributes",
        "WriteAttributes",
        "AllowedOAuthFlows",
        "AllowedOAuthScopes",
        "AllowedOAuthFlowsUserPoolClient",
        "CallbackURLs",
        "LogoutURLs",
        "DefaultRedirectURI",
        "SupportedIdentityProviders",
        "EnableTokenRevocation",
        "AuthSessionValidity",
    }
)
_CLIENT_IGNORED: Final = frozenset(
    {"AnalyticsConfiguration", "EnablePropagateAdditionalUserContextData", "RefreshTokenRotation"}
)


def provision_user_pool_client(context: ProvisionContext, resource: Resource) -> dict[str, Any]:
    _check(resource, _CLIENT_PASSED, _CLIENT_IGNORED)
    properties = context.resolver.resolve(resource.properties)
    request = {key: properties[key] for key in sorted(_CLIENT_PASSED & set(properties))}
    request.setdefault("ClientName", resource.logical_id)
    created = _cognito(context).create_user_pool_client(**request)["UserPoolClient"]
    log.info("created Cognito app client %s", request["ClientName"])
    return {
        "Ref": created["ClientId"],
        "ClientId": created["ClientId"],
        "Name": request["ClientName"],
    }


def provision_user_pool_group(context: ProvisionContext, resource: Resource) -> dict[str, Any]:
    applied = frozenset({"GroupName", "UserPoolId", "Description", "Precedence", "RoleArn"})
    _check(resource, applied, frozenset())
    properties = context.resolver.resolve(resource.properties)
    request = {key: properties[key] for key in sorted(applied & set(properties))}
    request.setdefault("GroupName", resource.logical_id)
    _cognito(context).create_group(**request)
    log.info("created Cognito group %s", request["GroupName"])
    return {"Ref": request["GroupName"]}


# --------------------------------------------------------------------------------------------
# HTTP API
# --------------------------------------------------------------------------------------------

_API_APPLIED: Final = frozenset({"Auth", "StageName", "FailOnWarnings", "Description", "Name"})
_API_IGNORED: Final = frozenset(
    {
        "Tags",
        "AccessLogSettings",
        "DefaultRouteSettings",
        "RouteSettings",
        "StageVariables",
        "DisableExecuteApiEndpoint",
        "PropagateTags",
    }
)
HTTP_API_EVENT_APPLIED: Final = frozenset(
    {"ApiId", "Method", "Path", "Auth", "PayloadFormatVersion", "TimeoutInMillis"}
)
HTTP_API_EVENT_IGNORED: Final = frozenset({"RouteSettings"})
DEFAULT_TIMEOUT_MS: Final = 30_000


def api_id_for(stack_name: str, logical_id: str) -> str:
    """A stable, API Gateway-shaped id (10 lowercase alphanumerics)."""
    return hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:10]


def jwks_url_for(issuer: str, endpoint_url: str) -> str:
    """Where the local gateway fetches an issuer's keys: moto's pool JWKS for Cognito issuers."""
    match = COGNITO_ISSUER.match(issuer)
    if match:
        return f"{endpoint_url.rstrip('/')}/{match['pool']}/.well-known/jwks.json"
    return f"{issuer.rstrip('/')}/.well-known/jwks.json"


def _authorizers(auth: Mapping[str, Any], endpoint_url: str) -> dict[str, dict[str, Any]]:
    unknown = sorted(set(auth) - {"Authorizers", "DefaultAuthorizer", "EnableIamAuthorizer"})
    if unknown or auth.get("EnableIamAuthorizer"):
        raise TemplateError(f"HttpApi Auth {unknown or ['EnableIamAuthorizer']} not supported")
    authorizers = {}
    for name, spec in (auth.get("Authorizers") or {}).items():
        jwt = spec.get("JwtConfiguration")
        if jwt is None or set(spec) - {"JwtConfiguration", "IdentitySource"}:
            raise TemplateError(f"authorizer {name}: only JWT authorizers run locally")
        issuer = str(jwt["issuer"])
        authorizers[name] = {
            "issuer": issuer,
            "audience": [str(a) for a in jwt.get("audience", [])],
            "identity_source": spec.get("IdentitySource", "$request.header.Authorization"),
            "jwks_url": jwks_url_for(issuer, endpoint_url),
        }
    return authorizers


def _route(
    function_id: str, event_id: str, event: Mapping[str, Any], default: str | None
) -> dict[str, Any]:
    unknown = sorted(set(event) - HTTP_API_EVENT_APPLIED - HTTP_API_EVENT_IGNORED)
    if unknown:
        raise TemplateError(f"{function_id} event {event_id}: property {unknown} not supported")
    if str(event.get("PayloadFormatVersion", "2.0")) != "2.0":
        raise TemplateError(f"{function_id} event {event_id}: only payload format 2.0 runs locally")
    named = (event.get("Auth") or {}).get("Authorizer", default)
    method = str(event.get("Method", "ANY")).upper()
    path = str(event.get("Path", "$default"))
    return {
        "route_key": "$default" if path == "$default" else f"{method} {path}",
        "method": method,
        "path": path,
        "function": function_id,
        "authorizer": None if named in (None, "NONE") else str(named),
        "timeout_ms": int(event.get("TimeoutInMillis", DEFAULT_TIMEOUT_MS)),
    }


def api_routes(
    context: ProvisionContext, api_logical_id: str, default: str | None
) -> list[dict[str, Any]]:
    """Every function's HttpApi events whose ApiId is `!Ref <api_logical_id>`."""
    routes = []
    for resource in context.template.resources.values():
        if resource.type != "AWS::Serverless::Function":
            continue
        for event_id, event in (resource.properties.get("Events") or {}).items():
            properties = event.get("Properties") or {}
            if event.get("Type") != "HttpApi" or properties.get("ApiId") != {"Ref": api_logical_id}:
                continue
            resolved = context.resolver.resolve(
                {k: v for k, v in properties.items() if k != "ApiId"}
            )
            routes.append(_route(resource.logical_id, event_id, resolved, default))
    return routes


def provision_http_api(context: ProvisionContext, resource: Resource) -> dict[str, Any]:
    _check(resource, _API_APPLIED, _API_IGNORED)
    properties = context.resolver.resolve(resource.properties)
    auth = properties.get("Auth") or {}
    authorizers = _authorizers(auth, context.endpoint_url)
    default = auth.get("DefaultAuthorizer")
    if default is not None and default not in authorizers:
        raise TemplateError(f"DefaultAuthorizer {default!r} is not among {sorted(authorizers)}")
    routes = api_routes(context, resource.logical_id, default)
    for route in routes:
        if route["authorizer"] is not None and route["authorizer"] not in authorizers:
            raise TemplateError(f"route {route['route_key']}: no authorizer {route['authorizer']}")
    api_id = api_id_for("aftercare-local", resource.logical_id)
    context.result.apis[resource.logical_id] = {
        "api_id": api_id,
        "stage": str(properties.get("StageName", "$default")),
        "authorizers": authorizers,
        "routes": routes,
    }
    log.info("HTTP API %s: %d route(s)", resource.logical_id, len(routes))
    return {"Ref": api_id, "ApiId": api_id, "ApiEndpoint": f"https://{api_id}.local"}


PROVISIONERS: Final = {
    "AWS::Cognito::UserPool": provision_user_pool,
    "AWS::Cognito::UserPoolClient": provision_user_pool_client,
    "AWS::Cognito::UserPoolGroup": provision_user_pool_group,
    HTTP_API_TYPE: provision_http_api,
}


def bind_api_functions(
    api: Mapping[str, Any], functions: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The gateway spec of one API: each route pointing at its function's worker."""
    routes = []
    for route in api["routes"]:
        function = functions[route["function"]]
        routes.append(
            {
                **route,
                "invoke_url": function["invoke_url"],
                "function_name": function["function_name"],
            }
        )
    return {**api, "routes": routes}


# --------------------------------------------------------------------------------------------
# Seeded local users
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalUser:
    username: str
    group: str
    customer_id: str | None = None
    engineer_id: str | None = None


# The engineers' ids are seeded field engineers (data/engineers.yaml): their jobs are theirs.
LOCAL_USERS: Final = (
    LocalUser("eng-ada", "engineers", engineer_id="E-ada"),
    LocalUser("eng-linus", "engineers", engineer_id="E-linus"),
    LocalUser("mgr-grace", "managers"),
    LocalUser("cust-0001", "customers", "c-0001"),
    LocalUser("cust-0002", "customers", "c-0002"),
    LocalUser("cust-0003", "customers", "c-0003"),
)
STATE_USERS: Final = {"engineer": "eng-ada", "manager": "mgr-grace", "customer": "cust-0001"}


def seed_users(
    pool_id: str, endpoint_url: str, region: str, users: tuple[LocalUser, ...] = LOCAL_USERS
) -> dict[str, str]:
    """Create the local users (password `LOCAL_PASSWORD`) in their groups; returns the state
    file's `users` entry (one user per role for `aftercare login`)."""
    cognito = cognito_client(endpoint_url, region)
    for user in users:
        attributes = [{"Name": "email", "Value": f"{user.username}@example.com"}]
        if user.customer_id:
            attributes.append({"Name": "custom:customer_id", "Value": user.customer_id})
        if user.engineer_id:
            attributes.append({"Name": "custom:engineer_id", "Value": user.engineer_id})
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=user.username,
            UserAttributes=attributes,
            MessageAction="SUPPRESS",
        )
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=user.username, Password=LOCAL_PASSWORD, Permanent=True
        )
        cognito.admin_add_user_to_group(
            UserPoolId=pool_id, Username=user.username, GroupName=user.group
        )
    return dict(STATE_USERS)

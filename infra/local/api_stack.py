"""The HTTP API side of `aftercare local up`: what the stack starts and records for it.

* ``iot-data``: the IoT data-plane stand-in (`infra.local.iotdata`), started with the broker;
  its URL becomes the template parameter `IotDataEndpoint`, so functions publish diagnostics
  requests with the same boto3 ``iot-data`` code as in AWS.
* ``api-<LogicalId>``: one local API gateway (`infra.local.apigw`) per HttpApi, once the
  workers run (each route points at its function's worker).
* the seeded Cognito users (`infra.local.provision_api.seed_users`), after the demo seed.

The state file gains ``api_url`` (the `ServiceApi`), ``apis``, ``iot_data_url``, ``users``,
and ``console_url`` when the template has the web console (`ConsoleFunction`, served by the
`ServiceApi` under /console). The template parameter `CognitoEndpoint` becomes the main moto
server, so the console's browser signs in against the local user pool (moto answers CORS).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from infra.local.provision_api import bind_api_functions, seed_users

IOT_DATA_PARAMETER: Final = "IotDataEndpoint"
COGNITO_PARAMETER: Final = "CognitoEndpoint"
CONSOLE_FUNCTION: Final = "ConsoleFunction"
CONSOLE_PATH: Final = "/console"
MAIN_API: Final = "ServiceApi"
USER_POOL: Final = "ServiceUserPool"


def announced_url(line: str, process: str) -> str:
    try:
        return str(json.loads(line)["url"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f'{process} announced {line!r}, expected READY {{"url": ...}}') from exc


def gateway_spec(
    api: Mapping[str, Any], functions: Mapping[str, Mapping[str, Any]], region: str
) -> dict[str, Any]:
    """The `infra.local.apigw` spec of one provisioned HttpApi."""
    return {**bind_api_functions(api, functions), "region": region}


def api_state(api_urls: Mapping[str, str], resources: Mapping[str, str]) -> dict[str, Any]:
    if not api_urls:
        return {}
    main = api_urls.get(MAIN_API) or next(iter(api_urls.values()))
    state: dict[str, Any] = {"api_url": main, "apis": dict(api_urls)}
    if CONSOLE_FUNCTION in resources and MAIN_API in api_urls:
        state["console_url"] = api_urls[MAIN_API].rstrip("/") + CONSOLE_PATH
    return state


def seed_local_users(
    resources: Mapping[str, str], endpoint_url: str, region: str
) -> dict[str, str] | None:
    """Seed the local users when the template has the service user pool."""
    pool_id = resources.get(USER_POOL)
    if pool_id is None:
        return None
    return seed_users(pool_id, endpoint_url, region)

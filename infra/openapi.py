"""The support API's OpenAPI document: every route on `ServiceApi`, from both functions.

The HTTP API has two functions behind one authorizer (`functions/api` and `functions/survey`);
each documents its own routes with Powertools, and this merges them into the one document
committed as `functions/api/openapi.json` (served at `GET /openapi.json`).
Regenerate: ``python -m infra.openapi``; a unit test fails while the committed copy differs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_FILE = ROOT / "functions/api/openapi.json"
FUNCTIONS = ("api", "survey", "dispatch_api", "jobs", "kpi_api", "owners", "parked_api")
API_TITLE = "Aftercare support API"
API_VERSION = "1.1.0"
DESCRIPTION = (
    "Tickets, devices, remote diagnostics and satisfaction surveys. Send a Cognito **ID** "
    "token as `Authorization: Bearer <token>` (an access token is refused with 401 "
    "`id_token_required`); engineers and managers see every ticket, customers only tickets "
    "and surveys of their own devices. Listings are paged: follow `X-Next-Cursor`."
)


def load_function(name: str) -> ModuleType:
    """A function's handler module, imported from its file as the Lambda runtime would."""
    module_name = f"aftercare_openapi_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(
        module_name, ROOT / f"functions/{name}/handler.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load functions/{name}/handler.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _schema_of(module: ModuleType) -> dict[str, Any]:
    text = module.app.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description=DESCRIPTION,
        security_schemes={"CognitoJwt": HTTPBearer(bearerFormat="JWT")},
        security=[{"CognitoJwt": []}],
    )
    return dict(json.loads(text))


def document() -> dict[str, Any]:
    """Both functions' documents as one: paths and component schemas merged."""
    merged: dict[str, Any] | None = None
    for name in FUNCTIONS:
        part = _schema_of(load_function(name))
        if merged is None:
            merged = part
            continue
        overlap = set(merged["paths"]) & set(part["paths"])
        if overlap:
            raise ValueError(f"two functions document the same paths: {sorted(overlap)}")
        merged["paths"].update(part["paths"])
        schemas = merged.setdefault("components", {}).setdefault("schemas", {})
        added = part.get("components", {}).get("schemas", {})
        clashing = sorted(k for k in set(schemas) & set(added) if schemas[k] != added[k])
        if clashing:
            raise ValueError(f"two functions define these schemas differently: {clashing}")
        schemas.update(added)
    assert merged is not None
    merged["paths"] = dict(sorted(merged["paths"].items()))
    schemas = merged.get("components", {}).get("schemas", {})
    merged.setdefault("components", {})["schemas"] = dict(sorted(schemas.items()))
    return merged


def write() -> None:
    OPENAPI_FILE.write_text(json.dumps(document(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write()

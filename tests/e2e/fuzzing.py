"""Schema-driven fuzzing of the committed OpenAPI against a running local stack: the one
probe every e2e module uses to show its routes answer generated requests without a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation import GenerationMode

OPENAPI = Path(__file__).resolve().parents[2] / "functions/api/openapi.json"


def api_operations() -> list[Any]:
    """Every operation of the committed OpenAPI document."""
    return [result.ok() for result in schemathesis.openapi.from_path(OPENAPI).get_all_operations()]


def server_errors(api_url: str, operation: Any, token: str, *, max_examples: int) -> list[str]:
    """The 5xx answers of `operation` to generated valid and invalid requests as `token`'s user."""
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def probe(case: Any) -> None:
            response = case.call(base_url=api_url, headers=headers, timeout=30)
            if response.status_code >= 500:
                errors.append(f"{case.as_curl_command()} -> {response.status_code}")

        probe()
    return errors

"""Fake AWS credentials for tests on moto (and the processes they start).

moto's docs put the credentials step first: fake keys and one region before any client is
built, and no `AWS_ENDPOINT_URL` left over from the shell, so nothing can reach real AWS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.local.provision_context import moto_client

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def use_fake_credentials(patch: pytest.MonkeyPatch) -> None:
    """Fake keys and region in the environment, and no endpoint override."""
    for key, value in FAKE_CREDENTIALS.items():
        patch.setenv(key, value)
    patch.delenv("AWS_ENDPOINT_URL", raising=False)


def moto_clients(endpoint: str, *services: str) -> tuple[Any, ...]:
    """Clients for `services` on a moto server, built as the local stack builds its own."""
    return tuple(moto_client(service, endpoint, REGION) for service in services)

"""Integration fixtures: a private, restartable Mosquitto per test; template.yaml provisioned on
a serial moto server per module (`moto_url`, `provisioned`); and the FaultIntake stack on
moto (`aws`, `intake`; helpers in intake_stack.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.request import Request, urlopen

import boto3
import pytest
from aftercare.adapters.aws import client
from moto import mock_aws

from infra.local.motoserver import SerialMotoServer
from infra.local.provision import provision
from infra.local.provision_context import AwsClients, ProvisionResult
from infra.local.seed import seed_demo
from infra.local.template import load_template
from tests.fakes.aws import use_fake_credentials
from tests.fakes.lambda_runtime import load_handler
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY, MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A Mosquitto on a free loopback port with persistence; ``.stop()``/``.start()`` restart it
    on the same port and persistence dir. ``.url`` is ``mqtt://127.0.0.1:PORT``."""
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is not installed: run `make setup`")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """template.yaml provisioned on moto (`mock_aws`) and seeded, with the FaultIntake and
    DeadLetterRecorder environment set as the template sets it."""
    use_fake_credentials(monkeypatch)
    for key, value in {
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Aftercare",
        "POWERTOOLS_SERVICE_NAME": "aftercare",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client.cache_clear()
        session = boto3.session.Session(region_name="us-east-1")
        clients = AwsClients(
            dynamodb=session.client("dynamodb"),
            sqs=session.client("sqs"),
            sns=session.client("sns"),
            iot=session.client("iot"),
            events=session.client("events"),
            s3=session.client("s3"),
        )
        result = provision(
            load_template(ROOT / "template.yaml"), clients, endpoint_url="http://unused"
        )
        seed_demo(result.resources, endpoint_url=None, region="us-east-1")  # type: ignore[arg-type]
        # Given the functions' environment exactly as the template gives it
        for fn in ("FaultIntakeFunction", "DeadLetterRecorderFunction"):
            for key, value in result.workers[fn]["environment"].items():
                monkeypatch.setenv(key, value)
        yield {"resources": result.resources, "ddb": clients.dynamodb}
        client.cache_clear()


@pytest.fixture
def intake(aws: dict[str, Any]) -> ModuleType:
    module = load_handler("fault_intake")
    module.deps.cache_clear()
    return module


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A serial moto server for the module, reset before and after it."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION
    )
    with SerialMotoServer() as server:
        # moto's backends are per process: leave none of this module's resources behind
        reset = f"{server.url}/moto-api/reset"
        urlopen(Request(reset, method="POST"), timeout=10).read()
        yield server.url
        urlopen(Request(reset, method="POST"), timeout=10).read()


@pytest.fixture(scope="module")
def provisioned(moto_url: str) -> ProvisionResult:
    """template.yaml provisioned on the module's moto server."""
    template = load_template(ROOT / "template.yaml")
    return provision(
        template, AwsClients.for_endpoint(moto_url, REGION), endpoint_url=moto_url, region=REGION
    )

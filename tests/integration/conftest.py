"""Integration fixtures: a private, restartable Mosquitto per test, and the FaultIntake stack
on moto (`aws`, `intake`; helpers in intake_stack.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import client
from moto import mock_aws

from infra.local.provision import AwsClients, provision
from infra.local.seed import seed_demo
from infra.local.template import load_template
from tests.fakes.aws import use_fake_credentials
from tests.fakes.lambda_runtime import load_handler
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY, MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]


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

"""End-to-end fixtures: the whole local stack, with a restartable Mosquitto of the test's own.

That Mosquitto is configured exactly as `aftercare local up` configures its own: client
certificates from the stack's local CA, ACL generated from the template's IoT policy. Tests
connect as a device with `device_agent_config` / `publish_as` (the device's own certificate).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.publish as mqtt_publish
import pytest
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.parked import DynamoParkedStore

from devices.config import AgentConfig, credential_files, parse_broker_url
from infra.local.broker_auth import ClientCredentials, issue_device_credentials
from infra.local.stack import LocalStack
from infra.target import Target
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY, MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class Stack:
    """A running local stack and handy clients for assertions."""

    def __init__(self, stack: LocalStack, broker: MosquittoBroker, state: dict[str, Any]) -> None:
        self.stack = stack
        self.broker = broker
        self.state = state
        self.target = Target(
            resources=dict(state["resources"]),
            endpoint_url=state["aws_endpoint_url"],
            region=state["region"],
            state=state,
        )
        self.tickets = DynamoTicketStore(
            tickets_table=self.target.resource("TicketsTable"),
            devices_table=self.target.resource("DevicesTable"),
            customers_table=self.target.resource("CustomersTable"),
            inventory_table=self.target.resource("InventoryTable"),
            ddb=self.target.client("dynamodb"),
        )
        self.parked = DynamoParkedStore(
            table=self.target.resource("ParkedTable"), ddb=self.target.client("dynamodb")
        )

    @property
    def mqtt_url(self) -> str:
        return str(self.state["mqtt_url"])

    def queues_empty(self) -> bool:
        sqs = self.target.client("sqs")
        total = 0
        for queue in ("FaultQueue", "FaultDeadLetterQueue"):
            attributes = sqs.get_queue_attributes(
                QueueUrl=self.target.resource(queue),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            total += sum(int(v) for v in attributes.values())
        return total == 0


def device_credentials(state: dict[str, Any], thing: str) -> ClientCredentials:
    """Local device `thing`'s certificate (issued now if the seed did not)."""
    return issue_device_credentials(Path(state["devices_dir"]).parent, thing)


def device_agent_config(
    state: dict[str, Any], thing: str, outbox_dir: Path, **extra: Any
) -> AgentConfig:
    """An agent configuration for `thing` on the stack's broker, with its own certificate."""
    credentials = device_credentials(state, thing)
    return AgentConfig(
        thing=thing,
        broker_url=state["mqtt_url"],
        outbox_dir=outbox_dir,
        **credential_files(credentials.directory),
        **extra,
    )


def publish_as(state: dict[str, Any], thing: str, messages: list[Any]) -> None:
    """Publish `messages` (paho `publish.multiple` dicts) connected as device `thing`."""
    credentials = device_credentials(state, thing)
    broker = parse_broker_url(state["mqtt_url"])
    mqtt_publish.multiple(
        messages,
        hostname=broker.host,
        port=broker.port,
        client_id=thing,
        tls={
            "ca_certs": str(credentials.ca_file),
            "certfile": str(credentials.cert_file),
            "keyfile": str(credentials.key_file),
        },
    )


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.3, what: str = ""
) -> T:
    """Poll until `probe` returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


def settle(stack: Stack, quiet_polls: int = 3, timeout: float = 60.0) -> None:
    """Wait until the fault queues stay empty for a few polls."""
    quiet = 0
    deadline = time.monotonic() + timeout
    while quiet < quiet_polls:
        if time.monotonic() > deadline:
            raise AssertionError("fault queues did not drain")
        quiet = quiet + 1 if stack.queues_empty() else 0
        time.sleep(0.4)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is missing: run `make setup` (installs mosquitto)")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    workdir = tmp_path_factory.mktemp("e2e")
    broker = MosquittoBroker(workdir=workdir / "mosquitto", auth_dir=workdir / "state")
    broker.start()
    stack = LocalStack(ROOT, workdir / "state", mqtt_url=broker.url)
    try:
        state = stack.start()
        yield Stack(stack, broker, state)
    finally:
        stack.stop()
        broker.stop()

"""End-to-end fixtures: the whole local stack, with a restartable Mosquitto of the test's own.

That Mosquitto is configured exactly as `aftercare local up` configures its own: client
certificates from the stack's local CA, ACL generated from the template's IoT policy. Tests
connect as a device with `device_agent_config` / `publish_as` (the device's own certificate).

One stack for many modules: `local_stack`
-----------------------------------------
A local stack takes ~15-30 s of CPU to start and keeps polling while it idles, so every module
whose tests can share one stack uses the `local_stack` fixture instead of starting its own:

    def test_something(local_stack: Stack, tmp_path: Path) -> None:
        agent = DeviceAgent(device_agent_config(local_stack.state, "rt-x-0001", tmp_path / "o"))

It starts at the first test that asks for it and stops right after the last one (the suite puts
those tests next to each other, and in one pytest-xdist group: tests/conftest.py). Tests that
share it must not depend on what others left behind: use devices (things), fault codes and
customers no other shared-stack test uses, look for *your* tickets (by thing and code) instead of
counting all of them, and leave the stack running (`local_stack.broker.stop()` must be followed
by `.start()` in the same test). `local_stack` is function-scoped (a handle on the one stack), so
a module-scoped fixture cannot ask for it: one that holds module-wide helpers on the shared stack
(clients, device agents) takes `shared_stack` and calls `.get()`, and the module's tests still ask
for `local_stack` (directly or through a function-scoped fixture), which is what groups the module
with the other sharing ones (test_dispatch.py, test_stale_actions.py).

A module keeps a private stack (a module-scoped fixture calling `LocalStack(...)` itself) when it
needs something the shared one must not have: template parameters or schedule rates of its own
(diagnostics, notifications), an extra function (the stream probe), or components killed on
purpose (crash recovery). Such a module is its own xdist group, so its stack starts once, and it
starts only the functions its tests use (`only_functions`; every other kind of child still
starts): a full stack takes ~15 s of CPU to start and its pollers idle at ~0.18 cores, one with
the fault path and the HTTP API ~9 s and ~0.02 cores. Leave out nothing a test's "nothing else
happened" assertion relies on (the DLQ recorder, for one, when a test asserts nothing is parked).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import paho.mqtt.publish as mqtt_publish
import pytest
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.parked import DynamoParkedStore

from devices.config import AgentConfig, IngestRules, credential_files, parse_broker_url
from infra.local.broker_auth import ClientCredentials, issue_device_credentials
from infra.local.stack import LocalStack
from infra.local.template import load_template
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


def http_api_functions() -> list[str]:
    """The functions behind the HTTP API (the local stack serves it only with all of them)."""
    template = load_template(ROOT / "template.yaml")
    return [
        r.logical_id
        for r in template.resources.values()
        if r.type == "AWS::Serverless::Function"
        and any(e.get("Type") == "HttpApi" for e in (r.properties.get("Events") or {}).values())
    ]


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
        **({"ingest_rules": IngestRules.of_stack(state)} | extra),
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


def fresh_session(state: dict[str, Any], thing: str) -> None:
    """Connect once as device `thing` with a clean session and leave: what the broker kept
    queued for that client id (on the shared stack, another module's device may have been
    sent a request while offline, e.g. a fix campaign's reset) is dropped, so a test's own
    agent starts from an empty session."""
    credentials = device_credentials(state, thing)
    broker = parse_broker_url(state["mqtt_url"])
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=thing,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    credentials.configure(client)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(10), f"{thing} could not connect for a fresh session"
    finally:
        client.disconnect()
        client.loop_stop()


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


# The shared stack's own template parameters: only what no other test can notice. A campaign page
# of 1 s (20 devices) makes the fleet incident's 60-device campaign take 3 pages, so the worker's
# hand-on through its queue runs on the stack.
SHARED_PARAMETERS = {"IncidentCampaignPageSeconds": "1"}


class SharedStack:
    """The stack behind `local_stack`: started on first use, stopped by `close()`."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._starts = 0
        self._running: Stack | None = None

    def get(self) -> Stack:
        if self._running is None:
            self._running = self._start()
        return self._running

    def _start(self) -> Stack:
        if not MOSQUITTO_BINARY.exists():
            pytest.fail(f"{MOSQUITTO_BINARY} is missing: run `make setup` (installs mosquitto)")
        os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        self._starts += 1
        workdir = self._workdir / f"run{self._starts}"
        broker = MosquittoBroker(workdir=workdir / "mosquitto", auth_dir=workdir / "state")
        broker.start()
        stack = LocalStack(
            ROOT, workdir / "state", mqtt_url=broker.url, param_overrides=SHARED_PARAMETERS
        )
        try:
            return Stack(stack, broker, stack.start())
        except BaseException:
            stack.stop()
            broker.stop()
            raise

    def close(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            try:
                running.stack.stop()
            finally:
                running.broker.stop()


SHARED_STACK = pytest.StashKey[SharedStack]()


@pytest.fixture(scope="session")
def shared_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStack]:
    holder = SharedStack(tmp_path_factory.mktemp("e2e"))
    request.config.stash[SHARED_STACK] = holder
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture
def local_stack(shared_stack: SharedStack) -> Stack:
    """The local stack shared by every test that asks for it (see the module's docstring)."""
    return shared_stack.get()


def in_a_sharing_module(item: pytest.Item | None) -> bool:
    """Whether `item`'s module has a test that uses `local_stack`."""
    if item is None:
        return False
    return any(
        "local_stack" in getattr(other, "fixturenames", ())
        for other in item.session.items
        if other.path == item.path
    )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared stack once the modules sharing it are done (tests/conftest.py runs them
    one after the other): it would otherwise poll moto for the rest of the session."""
    if in_a_sharing_module(item) and not in_a_sharing_module(nextitem):
        holder = item.config.stash.get(SHARED_STACK, None)
        if holder is not None:
            holder.close()

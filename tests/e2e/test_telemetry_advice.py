"""Telemetry end to end: a device agent publishes telemetry over MQTT -> IoT rule -> telemetry
queue -> TelemetryFunction -> the device's health item, maintenance advice through the
notifier, and a preventive ticket through fault intake. One private local stack, with only the
functions this path uses (the machine is shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.adapters.health import DynamoHealthStore
from aftercare.adapters.notification_reports import NotificationReports
from aftercare.domain.health import DeviceHealth
from aftercare.models.telemetry import TelemetryMeasures

from devices.agent import DeviceAgent
from infra.local.stack import LocalStack
from infra.seeding import demo_customers, demo_devices, notification_preferences
from infra.target import Target
from tests.e2e.conftest import device_agent_config, wait_for
from tests.integration.mosquitto_fixture import MOSQUITTO_BINARY

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = (
    "TelemetryFunction",
    "FaultIntakeFunction",
    "NotifierFunction",
    "NotificationSchedulerFunction",
)
CUSTOMERS = {c.customer_id: c for c in demo_customers()}
DEVICES = demo_devices()
TIMEOUT = 120.0  # a loaded 2-core machine: batches wait for their window and a free core


def a_device(model: str, avoid: set[str]) -> tuple[str, str]:
    device = next(d for d in DEVICES if d.model == model and d.customer_id not in avoid)
    return device.thing, device.customer_id


class World:
    def __init__(self, state: dict[str, Any], state_dir: Path) -> None:
        self.state = state
        self.state_dir = state_dir
        self.target = Target(
            resources=dict(state["resources"]),
            endpoint_url=state["aws_endpoint_url"],
            region=state["region"],
            state=state,
        )
        self.ddb = self.target.client("dynamodb")
        self.health = DynamoHealthStore(
            devices_table=self.target.resource("DevicesTable"),
            health_table=self.target.resource("DeviceHealthTable"),
            ddb=self.ddb,
        )
        self.tickets = DynamoTicketStore(
            tickets_table=self.target.resource("TicketsTable"),
            devices_table=self.target.resource("DevicesTable"),
            customers_table=self.target.resource("CustomersTable"),
            inventory_table=self.target.resource("InventoryTable"),
            ddb=self.ddb,
        )
        self.notifications = NotificationReports(
            table=self.target.resource("NotificationsTable"), ddb=self.ddb
        )

    def no_quiet_hours(self, customer_id: str) -> None:
        """These tests run at any hour: the seed's 22:00-07:00 quiet hours would hold advice."""
        seeded = CUSTOMERS[customer_id]
        item = seeded.model_dump(mode="json") | notification_preferences(seeded)
        item |= {"quiet_hours": None}
        self.ddb.put_item(TableName=self.target.resource("CustomersTable"), Item=to_item(item))

    def agent(self, thing: str, tmp_path: Path) -> DeviceAgent:
        agent = DeviceAgent(device_agent_config(self.state, thing, tmp_path / thing))
        assert agent.start(connect_timeout=30)
        return agent

    def health_of(self, thing: str) -> DeviceHealth | None:
        return self.health.read([thing])[thing].health

    def cli(self, *args: str) -> Any:
        argv = [sys.executable, "-m", "infra.cli", *args, "--json"]
        argv += ["--state-dir", str(self.state_dir)]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    def advice_sent(self, customer_id: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.notifications.list_attempts(customer_id=customer_id)
            if a["kind"] == "maintenance_advice" and a["status"] == "sent"
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is missing: run `make setup` (installs mosquitto)")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    stack = LocalStack(
        ROOT,
        tmp_path_factory.mktemp("telemetry") / "state",
        schedule_seconds={"NotificationSchedulerFunction": 1.0},
        only_functions=FUNCTIONS,
    )
    try:
        yield World(stack.start(), stack.state_dir)
    finally:
        stack.stop()


SILENCE_FUNCTIONS = ("TelemetryFunction", "HealthSweeperFunction")
HEARTBEAT_S = 4  # every model's heartbeat capped (template parameter HeartbeatCapSeconds)


@pytest.fixture
def silent_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A stack of its own for the silence path, with heartbeats of seconds and the
    HealthSweeper every second; function-scoped and first in the module, so it is stopped
    before the module's other stack starts (the machine is shared)."""
    if not MOSQUITTO_BINARY.exists():
        pytest.fail(f"{MOSQUITTO_BINARY} is missing: run `make setup` (installs mosquitto)")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    stack = LocalStack(
        ROOT,
        tmp_path_factory.mktemp("silence") / "state",
        param_overrides={"HeartbeatCapSeconds": str(HEARTBEAT_S)},
        schedule_seconds={"HealthSweeperFunction": 1.0},
        only_functions=SILENCE_FUNCTIONS,
    )
    try:
        yield World(stack.start(), stack.state_dir)
    finally:
        stack.stop()


def test_a_device_that_stops_reporting_gets_one_offline_check(
    silent_world: World, tmp_path: Path
) -> None:
    world = silent_world
    # Given an IC-300 whose owner has no quiet hours, reporting over MQTT
    thing, customer = a_device("IC-300", avoid=set())
    world.no_quiet_hours(customer)
    agent = world.agent(thing, tmp_path)
    try:
        agent.publish_telemetry(1, measures=TelemetryMeasures(temp_c=30.0)).wait_for_publish(10)
        health = wait_for(
            lambda: world.health_of(thing), timeout=TIMEOUT, what=f"{thing}'s health item"
        )
        assert health.offline_since is None and health.next_check_at is not None
    finally:
        agent.stop()  # When it stops sending telemetry
    # Then, once its heartbeat lapsed, the stack's HealthSweeper marks it offline
    offline = wait_for(
        lambda: (h := world.health_of(thing)) is not None and h.offline_since is not None and h,
        timeout=TIMEOUT,
        what=f"{thing} marked offline",
    )
    assert offline.offline_since >= offline.last_seen + timedelta(seconds=HEARTBEAT_S)
    # And its owner is sent the device-offline check, once for this silence
    offline_advice = f"ADV-{thing}-offline_"
    (sent,) = wait_for(
        lambda: [
            a for a in world.advice_sent(customer) if a["ticket_id"].startswith(offline_advice)
        ],
        timeout=TIMEOUT,
        what="the offline advice sent",
    )
    # (later sweeps find nothing due: the offline mark took it out of the due-checks index)
    time.sleep(3)
    assert [a["ticket_id"] for a in world.advice_sent(customer)] == [sent["ticket_id"]]
    # And the engineer CLI shows the device offline
    assert world.cli("devices", "health", thing)["online"] is False


def test_a_low_filter_updates_the_health_and_advises_the_owner_once(
    world: World, tmp_path: Path
) -> None:
    # Given an AC-HP whose owner has no quiet hours
    thing, customer = a_device("AC-HP", avoid=set())
    world.no_quiet_hours(customer)
    agent = world.agent(thing, tmp_path)
    try:
        # When it publishes telemetry over MQTT with its filter at 11 %
        low = TelemetryMeasures(temp_c=38.5, filter_life_pct=11.0, fan_hours=1200.0)
        agent.publish_telemetry(1, measures=low).wait_for_publish(10)
        # Then its health item shows the report
        health = wait_for(
            lambda: world.health_of(thing), timeout=TIMEOUT, what=f"{thing}'s health item"
        )
        assert health.filter_life_pct == 11.0 and health.temp_c == 38.5
        assert health.customer_id == customer and health.model == "AC-HP"
        # And its owner is sent one filter-change advice, with the filter's price
        (advice,) = wait_for(
            lambda: world.advice_sent(customer), timeout=TIMEOUT, what="the advice sent"
        )
        assert advice["ticket_id"].startswith(f"ADV-{thing}-filter-change_")
        # When the device reports the low filter again
        lower = TelemetryMeasures(temp_c=38.6, filter_life_pct=10.5, fan_hours=1201.0)
        agent.publish_telemetry(1, measures=lower).wait_for_publish(10)
        wait_for(
            lambda: (h := world.health_of(thing)) is not None and h.reports == 2,
            timeout=TIMEOUT,
            what="the second report folded in",
        )
    finally:
        agent.stop()
    # Then the health moved on, and no second advice was sent
    assert world.health_of(thing).filter_life_pct == 10.5  # type: ignore[union-attr]
    assert len(world.advice_sent(customer)) == 1
    # And the engineer CLI shows the device's health and the rule it fires
    shown = world.cli("devices", "health", thing)
    assert (shown["thing"], shown["filter_life_pct"], shown["reports"]) == (thing, 10.5, 2)
    assert shown["online"] and "filter-change" in shown["advised"]
    assert [f["rule"] for f in shown["firing"]] == ["filter-change"]


def test_a_week_of_rising_temperature_opens_one_preventive_ticket(
    world: World, tmp_path: Path
) -> None:
    # Given an EV charger (no filter, no fan) of another customer
    thing, customer = a_device("EV-CH", avoid={a_device("AC-HP", set())[1]})
    world.no_quiet_hours(customer)
    agent = world.agent(thing, tmp_path)
    now = datetime.now(UTC)
    try:
        # When it uploads a week of buffered daily readings, 0.8 °C warmer each day
        for day in range(7):
            reading = TelemetryMeasures(temp_c=34.0 + 0.8 * day, charge_cycles=1000 + day)
            sent_at = now - timedelta(days=6 - day)
            agent.publish_telemetry(1, measures=reading, sent_at=sent_at).wait_for_publish(10)
        # Then one preventive ticket at low priority is opened for it through fault intake
        tickets = wait_for(
            lambda: [
                t
                for t in world.tickets.list_tickets(thing=thing)
                if t.fault_code == "PREVENTIVE-THERMAL"
            ],
            timeout=TIMEOUT,
            what="the preventive ticket",
        )
        (ticket,) = tickets
        assert ticket.severity == "info" and ticket.priority in {"P3", "P4"}
        # When the temperature keeps rising the next day's report
        hotter = TelemetryMeasures(temp_c=40.0, charge_cycles=1007)
        agent.publish_telemetry(1, measures=hotter).wait_for_publish(10)
        wait_for(
            lambda: (h := world.health_of(thing)) is not None and h.reports == 8,
            timeout=TIMEOUT,
            what="the eighth report folded in",
        )
    finally:
        agent.stop()
    # Then there is still exactly one preventive ticket
    preventive = [
        t for t in world.tickets.list_tickets(thing=thing) if t.fault_code == "PREVENTIVE-THERMAL"
    ]
    assert [t.ticket_id for t in preventive] == [ticket.ticket_id]

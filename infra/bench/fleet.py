"""The benchmark's devices: registered customers and devices, certificates, paho clients.

Each phase gets fresh devices (so every fault of the phase is a new device + code, never an
occurrence of an earlier phase's ticket), owned by customers without quiet hours (so every new
ticket notifies at once). A device publishes its faults with QoS 1 on its own topic with its own
certificate, and answers the diagnostics requests it receives at once (`passed`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aftercare.domain.ports import CustomerRecord, DeviceRecord
from paho.mqtt.enums import CallbackAPIVersion

from devices.config import DeviceTopics, IngestRules
from infra.local.broker_auth import issue_device_credentials
from infra.seeding import write_all
from infra.target import STATE_FILE as STATE_FILE_NAME

log = logging.getLogger(__name__)

# Fault codes without spare parts (no stock reservation: the issue's "new fault without parts"),
# each with a diagnostics routine the ticket starts at once.
CODES = ("TEMP-HIGH", "WIFI-DROP", "FW-CRASHLOOP")
MODEL = "RT-X"
CONNECT_TIMEOUT_S = 15.0


def bench_customers(prefix: str, count: int) -> list[CustomerRecord]:
    return [
        CustomerRecord(
            customer_id=f"{prefix}-c{n:04d}",
            name=f"Bench Customer {n}",
            time_zone="UTC",
            channels=["email"],
            contact={"email": f"bench{n}@example.com"},
        )
        for n in range(count)
    ]


def bench_devices(prefix: str, count: int, customers: list[CustomerRecord]) -> list[DeviceRecord]:
    today = datetime.now(UTC).date()
    return [
        DeviceRecord(
            thing=f"{prefix}-d{n:05d}",
            serial=f"BENCH{n:08d}",
            model=MODEL,
            customer_id=customers[n % len(customers)].customer_id,
            region="eu-west",
            activated_at=date(today.year - 1, 1, 1),
            warranty_until=date(today.year + 1, 12, 31),
            firmware="3.1.0",
        )
        for n in range(count)
    ]


def register(
    ddb: Any,
    resources: dict[str, str],
    devices: list[DeviceRecord],
    customers: list[CustomerRecord],
) -> None:
    write_all(ddb, resources["CustomersTable"], [c.model_dump(mode="json") for c in customers])
    write_all(ddb, resources["DevicesTable"], [d.model_dump(mode="json") for d in devices])


def fault_payload(thing: str, code: str, fault_id: str) -> bytes:
    report = {
        "fault_id": fault_id,
        "code": code,
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "firmware": "3.1.0",
        "readings": {"bench": 1},
    }
    return json.dumps(report).encode()


def new_fault_id() -> str:
    return f"b{uuid.uuid4().hex[:20]}"


@dataclass
class BenchDevice:
    """One paho client with the device's certificate; answers diagnostics requests."""

    thing: str
    client: mqtt.Client
    topics: DeviceTopics
    connected: threading.Event = field(default_factory=threading.Event)
    acked: int = 0
    answered: int = 0
    # Fault publishes by message id: sent and acknowledged wall-clock times. Plain dicts, no
    # lock: paho calls on_publish holding its own lock, which publish() also takes.
    fault_sent: dict[int, float] = field(default_factory=dict)
    fault_acked: dict[int, float] = field(default_factory=dict)

    def publish_fault(self, code: str, fault_id: str) -> float:
        """Publish and return the wall-clock time the report left the device's code."""
        at = time.time()
        info = self.client.publish(
            self.topics.fault, fault_payload(self.thing, code, fault_id), qos=1
        )
        self.fault_sent[info.mid] = at
        return at

    def puback_latencies(self) -> list[float]:
        """Seconds from each fault's publish to the broker's PUBACK (the broker's share)."""
        return [
            self.fault_acked[mid] - at
            for mid, at in self.fault_sent.items()
            if mid in self.fault_acked
        ]

    def publish_payload(self, payload: bytes) -> None:
        self.client.publish(self.topics.fault, payload, qos=1)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@cache
def stack_ingest(state_dir: Path) -> IngestRules | None:
    """The Basic Ingest rules the stack in `state_dir` names (its local.json), if any."""
    state = state_dir / STATE_FILE_NAME
    return IngestRules.of_stack(json.loads(state.read_text())) if state.is_file() else None


def connect(state_dir: Path, mqtt_url: str, thing: str) -> BenchDevice:
    credentials = issue_device_credentials(state_dir, thing)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311, clean_session=True
    )
    credentials.configure(client)
    # as provisioned devices do: faults and answers straight to the rules (Basic Ingest)
    device = BenchDevice(thing, client, DeviceTopics.for_thing(thing, stack_ingest(state_dir)))
    client.on_connect = lambda c, _u, _f, rc, _p: _subscribed(device, rc)
    client.on_publish = lambda _c, _u, mid, _rc, _p: _acked(device, mid)
    client.on_message = lambda _c, _u, message: _answer(device, message)
    host, port = mqtt_url.split("://", 1)[1].rsplit(":", 1)
    client.connect_async(host, int(port), keepalive=60)
    client.loop_start()
    return device


def _subscribed(device: BenchDevice, reason: Any) -> None:
    if not reason.is_failure:
        device.client.subscribe(device.topics.diagnostics_request, qos=1)
        device.connected.set()


def _acked(device: BenchDevice, mid: int) -> None:
    device.acked += 1
    device.fault_acked[mid] = time.time()


def _answer(device: BenchDevice, message: mqtt.MQTTMessage) -> None:
    try:
        request = json.loads(message.payload)
    except ValueError:
        return
    result = {
        "request_id": request.get("request_id"),
        "status": "passed",
        "findings": {"bench": True},
        "remedied": False,
        "completed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    device.client.publish(device.topics.diagnostics_result, json.dumps(result), qos=1)
    device.answered += 1


def connect_all(state_dir: Path, mqtt_url: str, things: list[str]) -> list[BenchDevice]:
    devices = [connect(state_dir, mqtt_url, thing) for thing in things]
    deadline = time.monotonic() + CONNECT_TIMEOUT_S + 0.05 * len(devices)
    for device in devices:
        if not device.connected.wait(max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"bench device {device.thing} did not connect to {mqtt_url}")
    return devices

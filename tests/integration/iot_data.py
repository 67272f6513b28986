"""The IoT data-plane stand-in (`infra.local.iotdata`) in front of a test's Mosquitto, and a
device subscribed to one topic: what the diagnostics publisher tests need to see a message
arrive."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def iot_data_stand_in(mqtt_url: str) -> Iterator[str]:
    """Runs the stand-in against the broker at `mqtt_url`; yields its endpoint URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.iotdata", "--mqtt-url", mqtt_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline().removeprefix("READY "))["url"]
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Device:
    """What a subscribed device received; `received` is set by the first message."""

    received: threading.Event = field(default_factory=threading.Event)
    got: list[mqtt.MQTTMessage] = field(default_factory=list)


@contextmanager
def device_on(port: int, topic: str) -> Iterator[Device]:
    """A device connected to the broker on `port`, subscribed to `topic` at QoS 1."""
    device = Device()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        device.got.append(message)
        device.received.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        yield device
    finally:
        client.loop_stop()
        client.disconnect()

"""A private Mosquitto for tests, plus a small recording MQTT client.

``MosquittoBroker`` runs ``/usr/sbin/mosquitto`` on a free loopback port with persistence in
its own directory. By default it is anonymous (for pure-broker tests); with ``auth_dir`` it is
the local stack's enforcing broker: TLS with client certificates from the local CA in
``auth_dir`` and the ACL generated from template.yaml's ``DeviceIoTPolicy`` (``mqtts://`` URL).
``stop()``/``start()`` restart it on the same port with the same persisted sessions, which is
how tests simulate a broker outage. ``Recorder`` is a paho client that keeps every message it
receives (optionally in a persistent session; with ``credentials``, as that client).
"""

from __future__ import annotations

import getpass
import queue
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from infra.local.broker_auth import ClientCredentials, broker_config_lines
from infra.local.iot_policy import write_acl_file
from infra.local.stack_broker import MAX_MESSAGE_BYTES
from infra.local.template import load_template

MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")
TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, alive: Any = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("process exited before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class MosquittoBroker:
    """One Mosquitto process; restartable on the same port with the same persistence dir."""

    workdir: Path
    port: int = field(default_factory=free_port)
    binary: Path = MOSQUITTO_BINARY
    auth_dir: Path | None = None
    template: Path = TEMPLATE
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        scheme = "mqtt" if self.auth_dir is None else "mqtts"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def config_text(self) -> str:
        return "\n".join(
            [
                f"listener {self.port} 127.0.0.1",
                *self._security_lines(),
                "persistence true",
                f"persistence_location {self.workdir}/",
                # Without this, mosquitto started as root drops to "mosquitto" and cannot
                # write the persistence file into the test's private directory.
                f"user {getpass.getuser()}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "max_queued_messages 100000",
                f"message_size_limit {MAX_MESSAGE_BYTES}",  # as the local stack's broker
                "",
            ]
        )

    def _security_lines(self) -> list[str]:
        if self.auth_dir is None:
            return ["allow_anonymous true"]
        acl = write_acl_file(self.workdir / "acl", load_template(self.template), "us-east-1")
        return broker_config_lines(self.auth_dir, acl)

    def start(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            raise RuntimeError("mosquitto is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "mosquitto.conf"
        config.write_text(self.config_text())
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(self.binary), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        self._process = process
        try:
            wait_for_port(self.port, timeout, alive=lambda: process.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {exc}\n{self.log_tail()}") from exc

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate gracefully (mosquitto saves its persistence file on SIGTERM)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Recorder:
    """A test MQTT client that records what it receives on its subscriptions."""

    def __init__(
        self,
        url: str,
        client_id: str,
        topics: list[str],
        *,
        persistent: bool = False,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        credentials: ClientCredentials | None = None,
    ) -> None:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._topics = topics
        self._persistent = persistent
        self._protocol = protocol
        self.received: queue.Queue[MQTTMessage] = queue.Queue()
        self._subscribed = queue.Queue[bool]()
        v5 = protocol is MQTTProtocolVersion.MQTTv5
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if v5 else not persistent,
        )
        if credentials is not None:
            credentials.configure(self.client)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.put(True)
        self.client.on_message = lambda _c, _u, message: self.received.put(message)
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.acks: dict[int, ReasonCode] = {}
        self.disconnects: queue.Queue[ReasonCode] = queue.Queue()

    def start(self, timeout: float = 10.0) -> Recorder:
        if self._protocol is MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600 if self._persistent else 0
            self.client.connect(
                self._host, self._port, 30, clean_start=not self._persistent, properties=properties
            )
        else:
            self.client.connect(self._host, self._port, 30)
        self.client.loop_start()
        self._subscribed.get(timeout=timeout)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, timeout: float = 5.0, retain: bool = False
    ) -> ReasonCode | None:
        """Publish and wait for the broker; the PUBACK's reason code (MQTT 5, QoS 1) or None."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        return self.acks.get(info.mid)

    def take(self, count: int, timeout: float = 10.0) -> list[MQTTMessage]:
        """The next ``count`` messages; fails if they do not all arrive in time."""
        deadline = time.monotonic() + timeout
        messages = []
        for _ in range(count):
            remaining = max(deadline - time.monotonic(), 0.0)
            messages.append(self.received.get(timeout=remaining))
        return messages

    def quiet_for(self, seconds: float) -> list[MQTTMessage]:
        """Whatever else arrives within ``seconds`` (expected: nothing)."""
        time.sleep(seconds)
        extra = []
        while not self.received.empty():
            extra.append(self.received.get_nowait())
        return extra

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.acks[mid] = reason_code

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, *args: Any) -> None:
        reason = next((a for a in args if isinstance(a, ReasonCode)), None)
        if reason is not None:
            self.disconnects.put(reason)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            return
        if self._topics:
            client.subscribe([(topic, 1) for topic in self._topics])
        else:
            self._subscribed.put(True)

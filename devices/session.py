"""The device's MQTT session: the paho client, connecting with backoff, the MQTT 5 -> 3.1.1
fallback, the command subscription, simulated outages and shutdown.

Threads: paho runs the callbacks on its network thread. `lock` serialises everything that
publishes or swaps the client, so outbox order is wire order; it is never held while waiting
for the network thread (``loop_stop``), and the PUBACK callback never takes it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.config import AgentConfig, MqttProtocol, should_fall_back_to_v311
from devices.stats import StatsCounter

LOGGER = logging.getLogger("devices.agent")
PAHO_LOGGER = logging.getLogger("devices.agent.paho")
PAHO_CALLBACK_ERROR = "Caught exception in"


class SessionListener(Protocol):
    """What the session hands to delivery: connections and acknowledgements."""

    def on_connected(self, client: mqtt.Client) -> None:
        """Connected and subscribing; called under the session lock."""
        ...

    def on_client_replaced(self) -> None:
        """The client was replaced (protocol fallback); called under the session lock."""
        ...

    def on_acknowledged(self, mid: int, reason_code: ReasonCode) -> None: ...


def _current_client_only(callback: Callable[..., None]) -> Callable[..., None]:
    """A paho callback that ignores calls from a client this session has since replaced."""

    @functools.wraps(callback)
    def guarded(self: MqttSession, client: mqtt.Client, *args: Any) -> None:
        if client is self.client:
            callback(self, client, *args)

    return guarded


class MqttSession:
    """One thing's connection to the broker, kept up with backoff until `close()`."""

    def __init__(self, config: AgentConfig, stats: StatsCounter) -> None:
        self.config = config
        self.topics = config.topics
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.ready = threading.Event()
        self.halted = threading.Event()
        self.offline = False
        self.last_problem: str | None = None
        self.protocol = config.protocol
        self._stats = stats
        self._listener: SessionListener | None = None
        self._on_command: Callable[[MQTTMessage], None] = lambda message: None
        self._subscribe_mid: int | None = None
        self.client = self._build_client()

    def attach(self, listener: SessionListener, on_command: Callable[[MQTTMessage], None]) -> None:
        """Who hears of connections and PUBACKs, and who handles inbound commands."""
        self._listener = listener
        self._on_command = on_command

    @property
    def listener(self) -> SessionListener:
        if self._listener is None:
            raise RuntimeError("no listener attached to the MQTT session")
        return self._listener

    # -- control ---------------------------------------------------------------------------

    def open(self) -> None:
        """Start connecting in the background (paho retries with backoff); under the lock."""
        cfg = self.config
        broker = cfg.broker
        if self.protocol is MqttProtocol.V5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = cfg.session_expiry_s if cfg.persistent_session else 0
            self.client.connect_async(
                broker.host,
                broker.port,
                cfg.keepalive_s,
                clean_start=not cfg.persistent_session,
                properties=properties,
            )
        else:
            self.client.connect_async(broker.host, broker.port, cfg.keepalive_s)
        self.client.loop_start()

    def halt(self) -> mqtt.Client:
        """Stop reconnecting and fallbacks; returns the client to `close`."""
        with self.lock:
            self.halted.set()
            return self.client

    def close(self, client: mqtt.Client) -> None:
        self.connected.clear()
        self.ready.clear()
        client.disconnect()
        client.loop_stop()

    def go_offline(self) -> None:
        """Simulate a network outage: disconnect and stay away until ``go_online()``."""
        with self.lock:
            self.offline = True
            client = self.client
        self.close(client)

    def go_online(self, started: bool) -> None:
        """End a simulated outage: reconnect (the listener then replays the outbox)."""
        with self.lock:
            if not self.offline:
                return
            self.offline = False
            if started and not self.halted.is_set():
                self.open()

    def publish(self, topic: str, payload: bytes, qos: int) -> MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos)

    # -- the client ------------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        cfg = self.config
        v5 = self.protocol is MqttProtocol.V5
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.thing,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else not cfg.persistent_session,
        )
        client.on_log = self._on_log
        # A bug in a callback is logged (below) instead of killing the network thread for good.
        client.suppress_exceptions = True
        client.reconnect_delay_set(cfg.reconnect_min_delay_s, cfg.reconnect_max_delay_s)
        if cfg.broker.tls:
            client.tls_set(
                ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                certfile=str(cfg.cert_file) if cfg.cert_file else None,
                keyfile=str(cfg.key_file) if cfg.key_file else None,
            )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _switch_to_v311(self) -> None:
        """Replace the MQTT 5 client with a 3.1.1 one; runs on its own short-lived thread."""
        with self.lock:
            if self.halted.is_set() or self.protocol is MqttProtocol.V311:
                return
            old = self.client
            self.protocol = MqttProtocol.V311
            self.client = self._build_client()
            self.listener.on_client_replaced()
        old.disconnect()
        old.loop_stop()
        with self.lock:
            if not (self.halted.is_set() or self.offline):
                self.open()

    def _refused(self, reason_code: ReasonCode) -> None:
        allowed = self.config.fallback_to_v311 and not self.halted.is_set()
        if should_fall_back_to_v311(self.protocol, reason_code.value, allowed=allowed):
            LOGGER.warning(
                "%s: broker refused MQTT 5 (%s); reconnecting with MQTT 3.1.1",
                self.config.thing,
                reason_code,
            )
            threading.Thread(
                target=self._switch_to_v311,
                name=f"aftercare-fallback-{self.config.thing}",
                daemon=True,
            ).start()
            return
        self._note_problem(f"broker refused the connection: {reason_code}")

    def _note_problem(self, problem: str) -> None:
        if problem != self.last_problem:
            LOGGER.warning("%s: %s; retrying with backoff", self.config.thing, problem)
        self.last_problem = problem

    # -- paho callbacks (network thread) ---------------------------------------------------

    @_current_client_only
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._refused(reason_code)
            return
        self.last_problem = None
        self._stats.count(connects=1)
        LOGGER.info(
            "%s connected to %s (MQTT %s, session present: %s)",
            self.config.thing,
            self.config.broker_url,
            self.protocol.value,
            flags.session_present,
        )
        _, self._subscribe_mid = client.subscribe(
            [(self.topics.diagnostics_request, 1), (self.topics.diagnostics_cancel, 1)]
        )
        with self.lock:
            self.listener.on_connected(client)

    @_current_client_only
    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        broker = self.config.broker
        self._note_problem(f"cannot reach the broker at {broker.host}:{broker.port}")

    @_current_client_only
    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.ready.clear()
        if was_connected:
            level = logging.WARNING if reason_code.is_failure else logging.INFO
            LOGGER.log(level, "%s disconnected: %s", self.config.thing, reason_code)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if client is not self.client or mid != self._subscribe_mid:
            return
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            LOGGER.error(
                "%s: subscription to %s refused (%s); diagnostics requests will not arrive",
                self.config.thing,
                f"{self.topics.diagnostics_request} + {self.topics.diagnostics_cancel}",
                ", ".join(refused),
            )
        self.ready.set()

    @_current_client_only
    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.listener.on_acknowledged(mid, reason_code)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        # An exception raised in one of these callbacks is a bug: paho reports it with this
        # prefix (suppress_exceptions). The rest, even at paho's "error" level, is connection
        # chatter the agent already reports in its own words.
        bug = level == mqtt.MQTT_LOG_ERR and text.startswith(PAHO_CALLBACK_ERROR)
        PAHO_LOGGER.log(logging.ERROR if bug else logging.DEBUG, text)

    @_current_client_only
    def _on_message(self, client: mqtt.Client, userdata: Any, message: MQTTMessage) -> None:
        self._on_command(message)

"""The local IoT rules engine's MQTT side: Mosquitto -> rules -> actions, acknowledged late.

It subscribes with a persistent MQTT v5 session and manual acknowledgements, so a message is
acknowledged only once each matching rule has delivered it or parked it: nothing accepted is
lost. When a rule's error action fails too, the message is retried a bounded number of times
(at once for a permanent failure such as a document over SQS's 1 MiB) and then parked directly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTv5
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from infra.local.basic_ingest import basic_ingest_filter
from infra.local.bridge_spec import BridgeSpec
from infra.local.rule_engine import (
    DirectParking,
    Inbound,
    Outcome,
    ParkingFailed,
    ParkingUnavailable,
    Rule,
    apply_rule,
    rules_for,
)

logger = logging.getLogger("infra.local.iotrule")

SESSION_EXPIRY_S = 7 * 24 * 3600  # queued QoS 1 messages wait this long for a stopped bridge
RECEIVE_MAXIMUM = 64  # unacknowledged messages the broker may have in flight to us
KEEPALIVE_S = 30
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
# A rule whose error action keeps failing is tried this often (0.5 + 1 + 2 + 4 s of backoff)
# before the bridge parks the message itself; a permanent failure is parked at once.
RULE_ATTEMPTS = 5
SHUTDOWN_GRACE_S = 15.0


class _Abandoned(Exception):
    """Stopping while a message could not be settled: leave it unacknowledged."""


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(
            ["received", "basic_ingest", "unmatched", "retries", *(o.value for o in Outcome)], 0
        )

    def add(self, name: str) -> None:
        with self._lock:
            self._values[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class Bridge:
    """Mosquitto -> rules -> actions, with acknowledgements only after settlement."""

    def __init__(
        self,
        spec: BridgeSpec,
        rules: Sequence[Rule],
        stop: threading.Event,
        parking: DirectParking | None = None,
    ) -> None:
        self._spec = spec
        self._parking = parking
        self._rules = tuple(rules)
        self._filters = list(
            dict.fromkeys(
                [rule.parsed.topic_filter for rule in rules]
                + [basic_ingest_filter(rule.name) for rule in rules]
            )
        )
        self._stop = stop
        self._inbox: queue.Queue[Inbound | None] = queue.Queue()
        self._connection_lock = threading.Lock()
        self._generation = 0
        self._subscription_mid: int | None = None
        self._broker_unreachable = False
        self._ready = threading.Event()
        self.fatal: str | None = None
        self.counters = _Counters()
        self._worker = threading.Thread(target=self._work, name="rule-actions", daemon=True)
        self._client = self._build_client()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        parts = urlsplit(self._spec.mqtt_url)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._worker.start()
        self._client.connect_async(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def wait_ready(self) -> bool:
        """Block until subscribed; False when stopping or a fatal error came first."""
        while not self._ready.wait(0.2):
            if self._stop.is_set() or self.fatal:
                return False
        return True

    @property
    def healthy(self) -> bool:
        return self.fatal is None and self._worker.is_alive()

    def close(self) -> None:
        """Finish the message in hand, leave queued ones unacknowledged, disconnect."""
        self._stop.set()
        self._inbox.put(None)
        self._worker.join(SHUTDOWN_GRACE_S)
        self._client.disconnect()
        self._client.loop_stop()

    # -- MQTT callbacks (paho's network thread) ---------------------------------------------
    def _build_client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._spec.client_id,
            protocol=MQTTv5,
            manual_ack=True,
        )
        parts = urlsplit(self._spec.mqtt_url)
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            tls = self._spec.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls else None,
                certfile=str(tls.cert_file) if tls else None,
                keyfile=str(tls.key_file) if tls else None,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the connection: %s", reason_code)
            return
        with self._connection_lock:
            self._generation += 1
        self._broker_unreachable = False
        logger.info("connected (session present: %s); subscribing", flags.session_present)
        _, self._subscription_mid = client.subscribe(
            [(topic_filter, SubscribeOptions(qos=1)) for topic_filter in self._filters]
        )

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        if not self._broker_unreachable:
            logger.warning("cannot reach the broker at %s; retrying", self._spec.mqtt_url)
        self._broker_unreachable = True

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._connection_lock:
            self._generation += 1  # unacknowledged messages will be redelivered
        if not self._stop.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_subscribe(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscription_mid:
            return
        refused = [
            f for f, code in zip(self._filters, reason_codes, strict=False) if code.is_failure
        ]
        if refused:
            self.fatal = f"broker refused subscriptions to {refused}"
            logger.error(self.fatal)
            return
        logger.info("subscribed to %s", ", ".join(self._filters))
        self._ready.set()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        with self._connection_lock:
            generation = self._generation
        self._inbox.put(
            Inbound(
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                mid=message.mid,
                generation=generation,
                received_ms=time.time_ns() // 1_000_000,
            )
        )

    # -- worker thread ---------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            inbound = self._inbox.get()
            if inbound is None or self._stop.is_set():
                return
            try:
                outcomes = self.settle(inbound)
            except _Abandoned:
                logger.info("stopping: %s left unacknowledged for redelivery", inbound.topic)
                return
            self._acknowledge(inbound)
            summary = ", ".join(f"{name}={outcome}" for name, outcome in outcomes) or "no rule"
            logger.info("%s (%d bytes): %s", inbound.topic, len(inbound.payload), summary)

    def settle(self, inbound: Inbound) -> list[tuple[str, Outcome]]:
        """Run every matching rule on one message until each delivered or parked it."""
        self.counters.add("received")
        matching, topic = rules_for(self._rules, inbound.topic)
        if topic != inbound.topic:  # Basic Ingest: the named rule, on the unprefixed topic
            self.counters.add("basic_ingest")
            inbound = replace(inbound, topic=topic)
        if not matching:
            self.counters.add("unmatched")
        outcomes = []
        for rule in matching:
            outcome = self._apply_until_settled(rule, inbound)
            self.counters.add(outcome)
            outcomes.append((rule.name, outcome))
        return outcomes

    def _apply_until_settled(self, rule: Rule, inbound: Inbound) -> Outcome:
        """Deliver or park; never gives up on a message, never blocks on one for long.

        A failure of the rule's service alone is retried with backoff. After `RULE_ATTEMPTS`
        (at once for a permanent failure, e.g. a document over SQS's limit) the message is
        parked directly; only while the ParkedTable is unreachable too (AWS is down, and no
        later message could be settled either) does the bridge keep waiting."""
        delay = RETRY_MIN_S
        attempts = 0
        while True:
            attempts += 1
            try:
                return apply_rule(rule, inbound.topic, inbound.payload, inbound.received_ms)
            except ParkingFailed as exc:
                if exc.permanent or attempts >= RULE_ATTEMPTS:
                    parked = self._park_directly(rule, inbound, exc)
                    if parked is not None:
                        return parked
                logger.error("%s; retrying in %.1fs", exc, delay)
            self.counters.add("retries")
            if self._stop.wait(delay):
                raise _Abandoned
            delay = min(delay * 2, RETRY_MAX_S)

    def _park_directly(self, rule: Rule, inbound: Inbound, failed: ParkingFailed) -> Outcome | None:
        if self._parking is None:
            logger.error("rule %s: no ParkedTable to park %s in", rule.name, inbound.topic)
            return None
        try:
            reason = self._parking.park(rule, inbound, failed)
        except ParkingUnavailable as exc:
            logger.error("%s", exc)
            return None
        logger.warning(
            "rule %s: %s (%d bytes) parked directly as %s: %s",
            rule.name,
            inbound.topic,
            len(inbound.payload),
            reason,
            failed,
        )
        return Outcome.PARKED

    def _acknowledge(self, inbound: Inbound) -> None:
        if inbound.qos == 0:
            return
        # Under the lock the connection cannot be swapped between the check and the ack; an
        # ack for a message from an earlier connection would hit another message's id.
        with self._connection_lock:
            if inbound.generation == self._generation:
                self._client.ack(inbound.mid, inbound.qos)
                return
        logger.info(
            "connection changed since %s arrived; the broker will redeliver it", inbound.topic
        )

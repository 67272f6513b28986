"""Durable fault delivery: the on-disk outbox, what is in flight, PUBACKs and replays.

A fault is written to the outbox before the first publish attempt and leaves it only when the
broker's PUBACK arrives. On every (re)connect whatever paho still held in memory is dropped and
the outbox replayed in order, so faults raised while the broker was unreachable (or before a
restart) arrive in the order they were raised, each with its original ``fault_id``.
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt
from aftercare.models.payloads import FaultReport
from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from devices.inflight import InFlight
from devices.outbox import EntryStatus, Outbox, OutboxEntry
from devices.session import MqttSession
from devices.state import DeviceState
from devices.stats import StatsCounter

LOGGER = logging.getLogger("devices.agent")

# PUBACK reason codes that mean "not now" (packet id in use, quota exceeded): the entry stays
# pending and is sent again. Every other failure code rejects the entry for good.
PUBACK_RETRY_LATER = frozenset({0x91, 0x97})
SETTLE_POLL_S = 0.2
_ACCEPTED_RC = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


class FaultDelivery:
    """Sends outbox entries and other publishes over the session and settles their PUBACKs
    (the session's `SessionListener`).

    Methods documented "under the lock" expect the session lock held by the caller."""

    def __init__(
        self, session: MqttSession, outbox: Outbox, state: DeviceState, stats: StatsCounter
    ) -> None:
        self._session = session
        self._outbox = outbox
        self._state = state
        self._stats = stats
        self._thing = session.config.thing
        self._fault_topic = session.topics.fault
        self._inflight = InFlight()
        self._settled = threading.Condition()

    # -- session events --------------------------------------------------------------------

    def on_connected(self, client: mqtt.Client) -> None:
        """Connected: drop what paho held, replay the outbox, resend the rest; under the lock."""
        others = self._inflight.reset(client.drop_out_messages())
        self._session.connected.set()
        self.flush_pending()
        for message in others:
            self.send(message.topic, bytes(message.payload), message.qos, None)

    def on_client_replaced(self) -> None:
        self._inflight.reset([])

    def on_acknowledged(self, mid: int, reason: ReasonCode) -> None:
        """A PUBACK (network thread; never takes the session lock)."""
        known, entry_id = self._inflight.acknowledge(mid, reason)
        if known:
            self._settle(entry_id, reason)

    # -- sending ---------------------------------------------------------------------------

    def queue_fault(self, report: FaultReport, payload: bytes) -> FaultReport:
        """Store a new report and publish it if connected; a known fault_id is a retry."""
        with self._session.lock:
            stored = self._outbox.find(report.fault_id)
            if stored is not None:
                return FaultReport.model_validate_json(stored.payload)
            entry_id = self._outbox.add(self._fault_topic, payload, report.fault_id)
            self._state.record_fault(report)
            self._stats.count(faults_raised=1)
            if self._session.connected.is_set():
                self.send(self._fault_topic, payload, 1, entry_id)
        return report

    def send(self, topic: str, payload: bytes, qos: int, entry_id: int | None) -> MQTTMessageInfo:
        """Publish and track the mid; under the lock. Offline QoS>0 messages wait in paho."""
        info = self._session.publish(topic, payload, qos)
        if info.rc not in _ACCEPTED_RC:
            self._stats.count(publish_errors=1)
            LOGGER.error(
                "%s: publish to %s failed: %s", self._thing, topic, mqtt.error_string(info.rc)
            )
            return info
        if qos > 0 or info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            early = self._inflight.register(info.mid, entry_id)
            if early is not None:
                self._settle(entry_id, early)
        return info

    def flush_if_connected(self) -> None:
        with self._session.lock:
            if self._session.connected.is_set():
                self.flush_pending()

    def flush_pending(self) -> None:
        """Publish, in order, every pending entry not already in flight; under the lock."""
        for entry in self._outbox.pending():
            if not self._inflight.holds(entry.entry_id):
                self._adopt(entry)
                self.send(entry.topic, entry.payload, 1, entry.entry_id)

    def _adopt(self, entry: OutboxEntry) -> None:
        """Take a report queued by an earlier run or another process into the device state."""
        if entry.topic != self._fault_topic or self._state.has_seen(entry.fault_id):
            return
        try:
            self._state.record_fault(FaultReport.model_validate_json(entry.payload))
        except ValidationError:
            LOGGER.warning(
                "%s: outbox entry %d is not a valid FaultReport; publishing it as stored",
                self._thing,
                entry.entry_id,
            )

    def _settle(self, entry_id: int | None, reason: ReasonCode) -> None:
        """Record a PUBACK against its outbox entry and wake anyone waiting for it."""
        if entry_id is None:
            return
        if not reason.is_failure:
            if self._outbox.mark_delivered(entry_id):
                self._stats.count(delivered=1)
        elif reason.value in PUBACK_RETRY_LATER:
            LOGGER.warning(
                "%s: broker deferred outbox entry %d (%s); it will be sent again",
                self._thing,
                entry_id,
                reason,
            )
        else:
            self._outbox.mark_rejected(entry_id, str(reason))
            self._stats.count(rejected=1)
            LOGGER.error("%s: broker rejected outbox entry %d: %s", self._thing, entry_id, reason)
        with self._settled:
            self._settled.notify_all()

    # -- waiting ---------------------------------------------------------------------------

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the outbox has nothing pending; returns whether it got there in time."""
        deadline = time.monotonic() + timeout
        while self._outbox.pending_count():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.flush_if_connected()
            with self._settled:
                self._settled.wait(min(remaining, SETTLE_POLL_S))
        return True

    def wait_delivered(self, fault_id: str, timeout: float) -> EntryStatus:
        """Wait for one report's PUBACK (from this or another agent process sharing the outbox).

        Returns its status: ``pending`` when the timeout passed first.
        """
        deadline = time.monotonic() + timeout
        while True:
            entry = self._outbox.find(fault_id)
            if entry is None:
                raise KeyError(f"fault {fault_id} is not in the outbox {self._outbox.path}")
            remaining = deadline - time.monotonic()
            if entry.status is not EntryStatus.PENDING or remaining <= 0:
                return entry.status
            with self._settled:
                self._settled.wait(min(remaining, SETTLE_POLL_S))

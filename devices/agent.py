"""The device agent: reports faults durably over MQTT and answers diagnostics requests.

Delivery guarantee: a fault is written to the on-disk outbox before the first publish attempt
and leaves it only when the broker's PUBACK arrives. On every (re)connect the agent drops
whatever paho still held in memory and replays the outbox in order, so faults raised while the
broker was unreachable (or before a restart) arrive in the order they were raised, each with
its original ``fault_id``, exactly once per successful delivery attempt.

The agent is the facade over parts with one job each: the MQTT session (``devices.session``),
durable delivery (``devices.delivery``), the diagnostics routines (``devices.routines``) and the
ownership lock (``devices.ownership``). Threads: paho runs callbacks on its network thread; the
session lock serialises everything that publishes, so outbox order is wire order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from aftercare.models.payloads import MAX_FAULT_PAYLOAD_BYTES, FaultReport, ReadingValue, Severity
from aftercare.models.telemetry import TelemetryMeasures, TelemetryReport
from paho.mqtt.client import MQTTMessage, MQTTMessageInfo

from devices.config import AgentConfig, MqttProtocol
from devices.delivery import FaultDelivery
from devices.errors import AgentError, FaultTooLargeError
from devices.ids import new_fault_id, utc_now
from devices.outbox import EntryStatus, Outbox, OutboxError
from devices.ownership import OwnershipLock
from devices.routines import ROUTINES, Routine, accept_cancel, respond
from devices.session import MqttSession
from devices.state import DeviceState
from devices.stats import AgentStats, StatsCounter

LOGGER = logging.getLogger(__name__)


class DeviceAgent:
    """One device's MQTT agent: durable fault reports, diagnostics answers and telemetry.

    Lifecycle: ``start()`` once, then ``raise_fault()`` / ``publish_*()`` from any thread, then
    ``stop()``. ``raise_fault()`` also works before ``start()`` (the fault waits in the outbox).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        state: DeviceState | None = None,
        routines: Mapping[str, Routine] = ROUTINES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.topics = config.topics
        self.state = state or DeviceState(
            thing=config.thing,
            firmware=config.firmware,
            model=config.model,
            remote_fixable_codes=frozenset(config.remote_fixable_codes),
        )
        self._routines = routines
        self._clock = clock
        self._booted = time.monotonic()
        self._outbox = Outbox(config.outbox_path, durable=config.outbox_fsync)
        self._ownership = OwnershipLock(config.lock_path, config.thing)
        self._stats = StatsCounter()
        self._session = MqttSession(config, self._stats)
        self._delivery = FaultDelivery(self._session, self._outbox, self.state, self._stats)
        self._session.attach(self._delivery, self._on_command)
        self._started = False
        self._closed = False
        self._final_backlog = 0
        self._watcher: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, connect_timeout: float = 10.0) -> bool:
        """Connect in the background; wait up to ``connect_timeout`` s for CONNACK and SUBACK.

        Returns whether the agent is ready. When it is not, it keeps retrying with backoff and
        delivers the outbox as soon as the broker answers. Raises ``AgentBusyError`` when another
        agent owns this thing's outbox.
        """
        if self._started or self._closed:
            raise AgentError(f"agent for {self.config.thing} was already started")
        self._ownership.acquire()
        self._started = True
        self._outbox.prune()
        with self._session.lock:
            if not self._session.offline:
                self._session.open()
        if self.config.outbox_poll_s is not None:
            self._watcher = threading.Thread(
                target=self._watch_outbox,
                args=(self.config.outbox_poll_s,),
                name=f"aftercare-outbox-{self.config.thing}",
                daemon=True,
            )
            self._watcher.start()
        ready = self._session.ready.wait(connect_timeout)
        if not ready and connect_timeout > 0:
            LOGGER.warning(
                "%s: broker %s not ready after %.1fs (%s); retrying in the background",
                self.config.thing,
                self.config.broker_url,
                connect_timeout,
                self._session.last_problem or "no answer yet",
            )
        return ready

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed."""
        return self._session.ready.wait(timeout)

    def stop(self, drain_timeout: float = 10.0) -> int:
        """Wait up to ``drain_timeout`` s for every pending PUBACK, then disconnect and close.

        Returns how many reports are still pending; they stay on disk for the next start.
        Stopping again returns the same number.
        """
        if self._closed:
            return self._final_backlog
        if self._started:
            self.wait_drained(drain_timeout)
            self._shutdown_network()
        backlog = self._final_backlog = self._outbox.pending_count()
        self._outbox.close()
        self._closed = True
        if backlog:
            LOGGER.info(
                "%s: %d report(s) not acknowledged; they stay in %s",
                self.config.thing,
                backlog,
                self.config.outbox_path,
            )
        return backlog

    def go_offline(self) -> None:
        """Simulate a network outage: disconnect and stay away until ``go_online()``."""
        self._session.go_offline()

    def go_online(self) -> None:
        """End a simulated outage: reconnect, then replay the outbox."""
        self._session.go_online(self._started)

    # -- publishing ------------------------------------------------------------------------

    def raise_fault(
        self,
        code: str,
        severity: Severity | None = None,
        *,
        readings: Mapping[str, ReadingValue] | None = None,
        message: str | None = None,
        fault_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> FaultReport:
        """Report a fault: record it, store it in the outbox, then publish it (QoS 1) if connected.

        Raising again with a ``fault_id`` that is already stored is a retry: the stored report is
        returned and nothing new is queued. Invalid input raises pydantic's ``ValidationError``.
        """
        report = FaultReport(
            fault_id=fault_id or new_fault_id(),
            code=code,
            severity=severity,
            occurred_at=occurred_at or self._clock(),
            firmware=self.config.firmware,
            readings=dict(readings or {}),
            message=message,
            thing=self.config.thing,
        )
        self._ensure_open()
        payload = report.to_json_bytes()
        if len(payload) > MAX_FAULT_PAYLOAD_BYTES:
            raise FaultTooLargeError(
                f"fault report is {len(payload)} bytes; the limit is {MAX_FAULT_PAYLOAD_BYTES}"
            )
        return self._delivery.queue_fault(report, payload)

    def publish_raw(self, topic: str, payload: bytes, qos: int = 1) -> MQTTMessageInfo:
        """Publish bytes as they are: no validation, no outbox (for tests and simulations)."""
        self._ensure_open()
        with self._session.lock:
            return self._delivery.send(topic, payload, qos, None)

    def publish_telemetry(
        self,
        qos: int = 0,
        *,
        measures: TelemetryMeasures | None = None,
        sent_at: datetime | None = None,
    ) -> MQTTMessageInfo:
        """Publish a `TelemetryReport`: firmware, uptime, current readings, active fault codes
        and the model's counters (`measures`). ``sent_at`` defaults to now; a device that
        uploads readings it buffered while offline passes the time they were taken."""
        uptime_s = max(0, int(time.monotonic() - self._booted))
        sent_at = sent_at or self._clock()
        report = telemetry_report(self.config, self.state, uptime_s, sent_at, measures)
        return self.publish_raw(self.topics.telemetry, report.to_json_bytes(), qos)

    # -- waiting and inspection ------------------------------------------------------------

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the outbox has nothing pending; returns whether it got there in time."""
        return self._delivery.wait_drained(timeout)

    def wait_delivered(self, fault_id: str, timeout: float) -> EntryStatus:
        """Wait for one report's PUBACK (from this or another agent process sharing the outbox).

        Returns its status: ``pending`` when the timeout passed first.
        """
        return self._delivery.wait_delivered(fault_id, timeout)

    @property
    def is_connected(self) -> bool:
        return self._session.connected.is_set()

    @property
    def protocol(self) -> MqttProtocol:
        return self._session.protocol

    @property
    def stats(self) -> AgentStats:
        return self._stats.snapshot

    @property
    def backlog(self) -> int:
        """Reports stored but not yet acknowledged."""
        return self._outbox.pending_count()

    @property
    def last_problem(self) -> str | None:
        """Why the last connection attempt failed, if it did."""
        return self._session.last_problem

    # -- commands (network thread) ---------------------------------------------------------

    def _on_command(self, message: MQTTMessage) -> None:
        """A command: a diagnostics request to answer, or a cancel to remember."""
        if message.topic == self.topics.diagnostics_cancel:
            accept_cancel(self.state, bytes(message.payload), self._clock())
            return
        if message.topic != self.topics.diagnostics_request:
            LOGGER.debug("%s: ignoring a message on %s", self.config.thing, message.topic)
            return
        result = respond(self.state, bytes(message.payload), self._clock(), self._routines)
        if result is None:
            return
        payload = result.model_dump_json(exclude_none=True).encode()
        with self._session.lock:
            self._delivery.send(self.topics.diagnostics_result, payload, 1, None)
        LOGGER.info(
            "%s answered diagnostics request %s: %s",
            self.config.thing,
            result.request_id,
            result.status.value,
        )

    # -- internals -------------------------------------------------------------------------

    def _shutdown_network(self) -> None:
        client = self._session.halt()
        if self._watcher is not None:
            self._watcher.join()
        self._session.close(client)
        self._ownership.release()

    def _watch_outbox(self, interval: float) -> None:
        """Pick up reports that another process queued in this outbox."""
        while not self._session.halted.wait(interval):
            try:
                self._delivery.flush_if_connected()
            except OutboxError:
                LOGGER.exception("%s: cannot read the outbox", self.config.thing)

    def _ensure_open(self) -> None:
        if self._closed:
            raise AgentError(f"agent for {self.config.thing} is stopped")


def telemetry_report(
    config: AgentConfig,
    state: DeviceState,
    uptime_s: int,
    sent_at: datetime,
    measures: TelemetryMeasures | None,
) -> TelemetryReport:
    """The device's telemetry now: identity, uptime, readings, active faults, counters."""
    counters = (measures or TelemetryMeasures()).model_dump(exclude_none=True)
    with state.lock:
        return TelemetryReport(
            thing=config.thing,
            firmware=config.firmware,
            model=config.model,
            uptime_s=uptime_s,
            readings=dict(state.readings),
            active_faults=[f.code for f in state.faults()],
            sent_at=sent_at,
            **counters,
        )

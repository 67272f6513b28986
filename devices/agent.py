"""The device agent: reports faults durably over MQTT and answers diagnostics requests.

Delivery guarantee: a fault is written to the on-disk outbox before the first publish attempt
and leaves it only when the broker's PUBACK arrives. On every (re)connect the agent drops
whatever paho still held in memory and replays the outbox in order, so faults raised while the
broker was unreachable (or before a restart) arrive in the order they were raised, each with
its original ``fault_id``, exactly once per successful delivery attempt.

Threads: paho runs callbacks on its network thread. ``_publish_lock`` serialises everything
that publishes, so outbox order is wire order; it is never held while waiting for the network
thread (``loop_stop``), and the PUBACK callback never takes it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aftercare.models.payloads import (
    MAX_FAULT_PAYLOAD_BYTES,
    FaultReport,
    ReadingValue,
    Severity,
    ThingName,
)
from paho.mqtt.client import ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from devices.config import AgentConfig, MqttProtocol, should_fall_back_to_v311
from devices.outbox import EntryStatus, Outbox, OutboxEntry, OutboxError
from devices.routines import ROUTINES, Routine, accept_cancel, respond
from devices.state import DeviceState

LOGGER = logging.getLogger(__name__)
PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")
PAHO_CALLBACK_ERROR = "Caught exception in"

# PUBACK reason codes that mean "not now" (packet id in use, quota exceeded): the entry stays
# pending and is sent again. Every other failure code rejects the entry for good.
PUBACK_RETRY_LATER = frozenset({0x91, 0x97})
SETTLE_POLL_S = 0.2
_ACCEPTED_RC = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_fault_id(now: datetime | None = None) -> str:
    """A 26-character, time-ordered id (ULID layout: 48-bit epoch milliseconds, 80 random bits)."""
    millis = int((now or utc_now()).timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


class AgentError(RuntimeError):
    """The agent was used out of order (e.g. started twice)."""


class AgentBusyError(AgentError):
    """Another running agent (this or another process) owns this thing's outbox."""


class FaultTooLargeError(ValueError):
    """The serialised fault report exceeds the contract's 16 KiB."""


@dataclass(frozen=True, slots=True)
class AgentStats:
    """Counters since the agent was created."""

    faults_raised: int = 0
    delivered: int = 0
    rejected: int = 0
    publish_errors: int = 0
    connects: int = 0


class TelemetryReport(BaseModel):
    """Liveness and latest readings, published on ``dt/aftercare/{thing}/telemetry``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thing: ThingName
    firmware: str
    model: str | None = None
    readings: dict[str, ReadingValue]
    active_faults: list[str]
    sent_at: AwareDatetime


class _InFlight:
    """mid -> outbox entry id (None for non-outbox messages) of unacknowledged publishes.

    The network thread can handle a PUBACK before ``publish()`` has returned the mid to the
    publishing thread; such an early acknowledgement is parked until the mid is registered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry_by_mid: dict[int, int | None] = {}
        self._entries: set[int] = set()
        self._early: dict[int, ReasonCode] = {}

    def register(self, mid: int, entry_id: int | None) -> ReasonCode | None:
        """Remember a publish; returns its acknowledgement if that already arrived."""
        with self._lock:
            early = self._early.pop(mid, None)
            if early is None:
                self._entry_by_mid[mid] = entry_id
                if entry_id is not None:
                    self._entries.add(entry_id)
            return early

    def acknowledge(self, mid: int, reason: ReasonCode) -> tuple[bool, int | None]:
        """Forget an acknowledged mid; returns (known, entry id)."""
        with self._lock:
            if mid not in self._entry_by_mid:
                self._early[mid] = reason
                return False, None
            entry_id = self._entry_by_mid.pop(mid)
            if entry_id is not None:
                self._entries.discard(entry_id)
            return True, entry_id

    def holds(self, entry_id: int) -> bool:
        with self._lock:
            return entry_id in self._entries

    def reset(self, dropped: list[MQTTMessage]) -> list[MQTTMessage]:
        """Forget everything; returns the dropped messages that were not outbox entries."""
        with self._lock:
            others = [m for m in dropped if self._entry_by_mid.get(m.mid) is None]
            self._entry_by_mid.clear()
            self._entries.clear()
            self._early.clear()
        return others


class _OwnershipLock:
    """An exclusive ``flock`` on ``<thing>.lock``: one running agent per thing and outbox dir."""

    def __init__(self, path: Path, thing: str) -> None:
        self._path = path
        self._thing = thing
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise AgentBusyError(
                f"another agent for thing {self._thing} is running (it holds {self._path})"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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
        self._outbox = Outbox(config.outbox_path, durable=config.outbox_fsync)
        self._ownership = _OwnershipLock(config.lock_path, config.thing)
        self._publish_lock = threading.Lock()
        self._inflight = _InFlight()
        self._settled = threading.Condition()
        self._stats_lock = threading.Lock()
        self._stats = AgentStats()
        self._connected = threading.Event()
        self._ready = threading.Event()
        self._halt = threading.Event()
        self._offline = False
        self._started = False
        self._closed = False
        self._final_backlog = 0
        self._subscribe_mid: int | None = None
        self._last_problem: str | None = None
        self._watcher: threading.Thread | None = None
        self._protocol = config.protocol
        self._client = self._build_client()

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
        with self._publish_lock:
            if not self._offline:
                self._open_connection(self._client)
        if self.config.outbox_poll_s is not None:
            self._watcher = threading.Thread(
                target=self._watch_outbox,
                args=(self.config.outbox_poll_s,),
                name=f"aftercare-outbox-{self.config.thing}",
                daemon=True,
            )
            self._watcher.start()
        ready = self._ready.wait(connect_timeout)
        if not ready and connect_timeout > 0:
            LOGGER.warning(
                "%s: broker %s not ready after %.1fs (%s); retrying in the background",
                self.config.thing,
                self.config.broker_url,
                connect_timeout,
                self._last_problem or "no answer yet",
            )
        return ready

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed."""
        return self._ready.wait(timeout)

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
        with self._publish_lock:
            self._offline = True
            client = self._client
        self._connected.clear()
        self._ready.clear()
        client.disconnect()
        client.loop_stop()

    def go_online(self) -> None:
        """End a simulated outage: reconnect, then replay the outbox."""
        with self._publish_lock:
            if not self._offline:
                return
            self._offline = False
            if self._started and not self._halt.is_set():
                self._open_connection(self._client)

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
        with self._publish_lock:
            stored = self._outbox.find(report.fault_id)
            if stored is not None:
                return FaultReport.model_validate_json(stored.payload)
            entry_id = self._outbox.add(self.topics.fault, payload, report.fault_id)
            self.state.record_fault(report)
            self._count(faults_raised=1)
            if self._connected.is_set():
                self._send(self.topics.fault, payload, 1, entry_id)
        return report

    def publish_raw(self, topic: str, payload: bytes, qos: int = 1) -> MQTTMessageInfo:
        """Publish bytes as they are: no validation, no outbox (for tests and simulations)."""
        self._ensure_open()
        with self._publish_lock:
            return self._send(topic, payload, qos, None)

    def publish_telemetry(self, qos: int = 0) -> MQTTMessageInfo:
        """Publish the current readings, active fault codes and firmware version."""
        with self.state.lock:
            report = TelemetryReport(
                thing=self.config.thing,
                firmware=self.config.firmware,
                model=self.config.model,
                readings=dict(self.state.readings),
                active_faults=[f.code for f in self.state.faults()],
                sent_at=self._clock(),
            )
        return self.publish_raw(
            self.topics.telemetry, report.model_dump_json(exclude_none=True).encode(), qos
        )

    # -- waiting and inspection ------------------------------------------------------------

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the outbox has nothing pending; returns whether it got there in time."""
        deadline = time.monotonic() + timeout
        while self._outbox.pending_count():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._flush_if_connected()
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
                raise KeyError(f"fault {fault_id} is not in the outbox {self.config.outbox_path}")
            remaining = deadline - time.monotonic()
            if entry.status is not EntryStatus.PENDING or remaining <= 0:
                return entry.status
            with self._settled:
                self._settled.wait(min(remaining, SETTLE_POLL_S))

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def protocol(self) -> MqttProtocol:
        return self._protocol

    @property
    def stats(self) -> AgentStats:
        with self._stats_lock:
            return self._stats

    @property
    def backlog(self) -> int:
        """Reports stored but not yet acknowledged."""
        return self._outbox.pending_count()

    @property
    def last_problem(self) -> str | None:
        """Why the last connection attempt failed, if it did."""
        return self._last_problem

    # -- connection ------------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        cfg = self.config
        v5 = self._protocol is MqttProtocol.V5
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

    def _open_connection(self, client: mqtt.Client) -> None:
        """Start connecting in the background (paho retries with backoff); under the lock."""
        cfg = self.config
        broker = cfg.broker
        if self._protocol is MqttProtocol.V5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = cfg.session_expiry_s if cfg.persistent_session else 0
            client.connect_async(
                broker.host,
                broker.port,
                cfg.keepalive_s,
                clean_start=not cfg.persistent_session,
                properties=properties,
            )
        else:
            client.connect_async(broker.host, broker.port, cfg.keepalive_s)
        client.loop_start()

    def _shutdown_network(self) -> None:
        with self._publish_lock:
            self._halt.set()
            client = self._client
        if self._watcher is not None:
            self._watcher.join()
        self._connected.clear()
        self._ready.clear()
        client.disconnect()
        client.loop_stop()
        self._ownership.release()

    def _switch_to_v311(self) -> None:
        """Replace the MQTT 5 client with a 3.1.1 one; runs on its own short-lived thread."""
        with self._publish_lock:
            if self._halt.is_set() or self._protocol is MqttProtocol.V311:
                return
            old = self._client
            self._protocol = MqttProtocol.V311
            self._client = self._build_client()
            self._inflight.reset([])
        old.disconnect()
        old.loop_stop()
        with self._publish_lock:
            if not (self._halt.is_set() or self._offline):
                self._open_connection(self._client)

    def _watch_outbox(self, interval: float) -> None:
        """Pick up reports that another process queued in this outbox."""
        while not self._halt.wait(interval):
            try:
                self._flush_if_connected()
            except OutboxError:
                LOGGER.exception("%s: cannot read the outbox", self.config.thing)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if client is not self._client:
            return
        if reason_code.is_failure:
            self._refused(reason_code)
            return
        self._last_problem = None
        self._count(connects=1)
        LOGGER.info(
            "%s connected to %s (MQTT %s, session present: %s)",
            self.config.thing,
            self.config.broker_url,
            self._protocol.value,
            flags.session_present,
        )
        _, self._subscribe_mid = client.subscribe(
            [(self.topics.diagnostics_request, 1), (self.topics.diagnostics_cancel, 1)]
        )
        with self._publish_lock:
            others = self._inflight.reset(client.drop_out_messages())
            self._connected.set()
            self._flush_pending()
            for message in others:
                self._send(message.topic, bytes(message.payload), message.qos, None)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if client is not self._client:
            return
        broker = self.config.broker
        self._note_problem(f"cannot reach the broker at {broker.host}:{broker.port}")

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if client is not self._client:
            return
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._ready.clear()
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
        if client is not self._client or mid != self._subscribe_mid:
            return
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            LOGGER.error(
                "%s: subscription to %s refused (%s); diagnostics requests will not arrive",
                self.config.thing,
                f"{self.topics.diagnostics_request} + {self.topics.diagnostics_cancel}",
                ", ".join(refused),
            )
        self._ready.set()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if client is not self._client:
            return
        known, entry_id = self._inflight.acknowledge(mid, reason_code)
        if known:
            self._settle(entry_id, reason_code)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        # An exception raised in one of these callbacks is a bug: paho reports it with this
        # prefix (suppress_exceptions). The rest, even at paho's "error" level, is connection
        # chatter the agent already reports in its own words.
        bug = level == mqtt.MQTT_LOG_ERR and text.startswith(PAHO_CALLBACK_ERROR)
        PAHO_LOGGER.log(logging.ERROR if bug else logging.DEBUG, text)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: MQTTMessage) -> None:
        if client is not self._client:
            return
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
        with self._publish_lock:
            self._send(self.topics.diagnostics_result, payload, 1, None)
        LOGGER.info(
            "%s answered diagnostics request %s: %s",
            self.config.thing,
            result.request_id,
            result.status.value,
        )

    # -- internals -------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise AgentError(f"agent for {self.config.thing} is stopped")

    def _refused(self, reason_code: ReasonCode) -> None:
        allowed = self.config.fallback_to_v311 and not self._halt.is_set()
        if should_fall_back_to_v311(self._protocol, reason_code.value, allowed=allowed):
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
        if problem != self._last_problem:
            LOGGER.warning("%s: %s; retrying with backoff", self.config.thing, problem)
        self._last_problem = problem

    def _flush_if_connected(self) -> None:
        with self._publish_lock:
            if self._connected.is_set():
                self._flush_pending()

    def _flush_pending(self) -> None:
        """Publish, in order, every pending entry not already in flight; under the lock."""
        for entry in self._outbox.pending():
            if not self._inflight.holds(entry.entry_id):
                self._adopt(entry)
                self._send(entry.topic, entry.payload, 1, entry.entry_id)

    def _adopt(self, entry: OutboxEntry) -> None:
        """Take a report queued by an earlier run or another process into the device state."""
        if entry.topic != self.topics.fault or self.state.has_seen(entry.fault_id):
            return
        try:
            self.state.record_fault(FaultReport.model_validate_json(entry.payload))
        except ValidationError:
            LOGGER.warning(
                "%s: outbox entry %d is not a valid FaultReport; publishing it as stored",
                self.config.thing,
                entry.entry_id,
            )

    def _send(self, topic: str, payload: bytes, qos: int, entry_id: int | None) -> MQTTMessageInfo:
        """Publish and track the mid; under the lock. Offline QoS>0 messages wait in paho."""
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc not in _ACCEPTED_RC:
            self._count(publish_errors=1)
            LOGGER.error(
                "%s: publish to %s failed: %s", self.config.thing, topic, mqtt.error_string(info.rc)
            )
            return info
        if qos > 0 or info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            early = self._inflight.register(info.mid, entry_id)
            if early is not None:
                self._settle(entry_id, early)
        return info

    def _settle(self, entry_id: int | None, reason: ReasonCode) -> None:
        """Record a PUBACK against its outbox entry and wake anyone waiting for it."""
        if entry_id is None:
            return
        if not reason.is_failure:
            if self._outbox.mark_delivered(entry_id):
                self._count(delivered=1)
        elif reason.value in PUBACK_RETRY_LATER:
            LOGGER.warning(
                "%s: broker deferred outbox entry %d (%s); it will be sent again",
                self.config.thing,
                entry_id,
                reason,
            )
        else:
            self._outbox.mark_rejected(entry_id, str(reason))
            self._count(rejected=1)
            LOGGER.error(
                "%s: broker rejected outbox entry %d: %s", self.config.thing, entry_id, reason
            )
        with self._settled:
            self._settled.notify_all()

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            updated = {name: getattr(self._stats, name) + n for name, n in increments.items()}
            self._stats = replace(self._stats, **updated)

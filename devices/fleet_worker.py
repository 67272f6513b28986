"""One fleet shard: a group of device agents playing their part of a plan.

A shard runs in a worker thread (small fleets) or in its own process. Processes are needed for
big fleets because paho's network loop uses ``select()``, which cannot watch a descriptor
numbered 1024 or more, and every device holds about seven descriptors (socket, paho's wake-up
socket pair, the outbox's SQLite files and its lock file).

Protocol: the shard connects its devices and sends ``connected``; it waits for ``go`` (a wall
clock start instant shared by every shard, so a storm hits all shards at once), plays its
events, sends ``status`` about once a second, drains its outboxes, stops its agents and sends
``done``. A ``cancel`` command ends the playing early; draining still happens.
"""

from __future__ import annotations

import logging
import queue
import signal
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum
from typing import Any, Protocol

from paho.mqtt.enums import MQTTErrorCode

from devices.agent import DeviceAgent
from devices.config import AgentConfig
from devices.ids import utc_now
from devices.outbox import OutboxError
from devices.scenario import EventKind, PlannedEvent

LOGGER = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
DRAIN_POLL_S = 0.1
STOP_WORKERS = 32
GO = "go"
CANCEL = "cancel"


class Channel(Protocol):
    """What ``queue.Queue`` and ``multiprocessing.Queue`` have in common."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None: ...


class Phase(IntEnum):
    """How far a shard has got; the fleet reports the least advanced shard's phase."""

    CONNECTING = 0
    RUNNING = 1
    DRAINING = 2
    DONE = 3


@dataclass(frozen=True, slots=True)
class ShardJob:
    """A shard's devices and events (``PlannedEvent.device`` indexes ``configs``)."""

    index: int
    configs: list[AgentConfig]
    events: list[PlannedEvent]
    duration_s: float
    connect_timeout_s: float
    drain_timeout_s: float


@dataclass(frozen=True, slots=True)
class ShardStatus:
    phase: Phase
    faults_raised: int
    duplicates_sent: int
    connected: int
    offline: int
    backlog: int


@dataclass(frozen=True, slots=True)
class ShardResult:
    connected_at_start: int = 0
    faults_raised: int = 0
    storm_faults: int = 0
    offline_faults: int = 0
    duplicates_sent: int = 0
    offline_episodes: int = 0
    faults_delivered: int = 0
    publish_failures: int = 0
    outbox_backlog: int = 0
    per_code: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShardMessage:
    """Shard -> coordinator: ``connected`` (int), ``status``, ``done`` or ``failed`` (text)."""

    kind: str
    shard: int
    body: Any


@dataclass
class _Tally:
    faults_raised: int = 0
    storm_faults: int = 0
    offline_faults: int = 0
    duplicates_sent: int = 0
    offline_episodes: int = 0
    publish_failures: int = 0
    per_code: Counter[str] = field(default_factory=Counter)
    sent: dict[int, bytes] = field(default_factory=dict)


class ShardRunner:
    """Plays one shard's events with one ``DeviceAgent`` per device."""

    def __init__(self, job: ShardJob, inbox: Channel, sink: Channel) -> None:
        self.job = job
        self._inbox = inbox
        self._sink = sink
        self._agents: list[DeviceAgent] = []
        self._offline: set[int] = set()
        self._tally = _Tally()
        self._connected_at_start = 0
        self._last_status = float("-inf")

    def run(self) -> None:
        try:
            self._agents = [DeviceAgent(config) for config in self.job.configs]
            self._connected_at_start = self._connect()
            self._send("connected", self._connected_at_start)
            start_at = self._await_go()
            if start_at is not None:
                self._play(start_at)
            self._drain()
        finally:
            result = self._stop_all()
        self._send("done", result)

    def _connect(self) -> int:
        for agent in self._agents:
            agent.start(connect_timeout=0)
        deadline = time.monotonic() + self.job.connect_timeout_s
        ready = sum(agent.wait_ready(max(deadline - time.monotonic(), 0)) for agent in self._agents)
        if ready < len(self._agents):
            LOGGER.warning(
                "%d of %d devices not connected after %.0fs; their faults wait in their outboxes",
                len(self._agents) - ready,
                len(self._agents),
                self.job.connect_timeout_s,
            )
        return ready

    def _await_go(self) -> float | None:
        """The shared wall-clock start instant, or None when cancelled first."""
        while True:
            command = self._inbox.get()
            if command[0] == GO:
                return float(command[1])
            if command[0] == CANCEL:
                return None

    def _play(self, start_at: float) -> None:
        play_start = time.monotonic() + (start_at - time.time())
        for event in self.job.events:
            if not self._sleep_until(play_start + event.at_s):
                return
            self._dispatch(event)
        self._sleep_until(play_start + self.job.duration_s)

    def _sleep_until(self, target: float) -> bool:
        """Wait for ``target`` (monotonic) while reporting status; False when cancelled."""
        while (remaining := target - time.monotonic()) > 0:
            try:
                command = self._inbox.get(timeout=min(remaining, STATUS_EVERY_S))
            except queue.Empty:
                command = None
            if command is not None and command[0] == CANCEL:
                return False
            self._status(Phase.RUNNING)
        return True

    def _drain(self) -> None:
        for device in sorted(self._offline):
            self._agents[device].go_online()
        self._offline.clear()
        deadline = time.monotonic() + self.job.drain_timeout_s
        while (backlog := sum(agent.backlog for agent in self._agents)) > 0:
            if time.monotonic() >= deadline:
                LOGGER.warning("%d report(s) still pending after the drain timeout", backlog)
                return
            self._status(Phase.DRAINING, backlog)
            time.sleep(DRAIN_POLL_S)

    def _stop_all(self) -> ShardResult:
        agents = self._agents
        delivered = sum(agent.stats.delivered for agent in agents)
        failures = sum(agent.stats.rejected + agent.stats.publish_errors for agent in agents)
        # In parallel: an agent waiting out a reconnect backoff takes up to a second to stop.
        with ThreadPoolExecutor(STOP_WORKERS, thread_name_prefix="aftercare-stop") as pool:
            backlog = sum(pool.map(lambda agent: agent.stop(drain_timeout=0), agents))
        tally = self._tally
        return ShardResult(
            connected_at_start=self._connected_at_start,
            faults_raised=tally.faults_raised,
            storm_faults=tally.storm_faults,
            offline_faults=tally.offline_faults,
            duplicates_sent=tally.duplicates_sent,
            offline_episodes=tally.offline_episodes,
            faults_delivered=delivered,
            publish_failures=tally.publish_failures + failures,
            outbox_backlog=backlog,
            per_code=dict(tally.per_code),
        )

    def _dispatch(self, event: PlannedEvent) -> None:
        agent = self._agents[event.device]
        if event.kind is EventKind.FAULT:
            self._raise(agent, event)
        elif event.kind is EventKind.DUPLICATE:
            self._duplicate(agent, event)
        elif event.kind is EventKind.TELEMETRY:
            self._telemetry(agent, event)
        elif event.kind is EventKind.OFFLINE_START:
            agent.go_offline()
            self._offline.add(event.device)
            self._tally.offline_episodes += 1
        else:
            agent.go_online()
            self._offline.discard(event.device)

    def _raise(self, agent: DeviceAgent, event: PlannedEvent) -> None:
        assert event.code is not None
        try:
            report = agent.raise_fault(event.code, readings=event.readings)
        except OutboxError:
            LOGGER.exception("%s: fault %s not stored", agent.config.thing, event.code)
            self._tally.publish_failures += 1
            return
        tally = self._tally
        tally.sent[event.seq] = report.to_json_bytes()
        tally.faults_raised += 1
        tally.per_code[event.code] += 1
        tally.storm_faults += event.storm
        tally.offline_faults += event.offline

    def _duplicate(self, agent: DeviceAgent, event: PlannedEvent) -> None:
        """Publish an already-sent report again, byte for byte (at-least-once redelivery)."""
        payload = self._tally.sent.get(event.ref) if event.ref is not None else None
        if payload is None:
            return
        info = agent.publish_raw(agent.topics.fault, payload)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._tally.duplicates_sent += 1
        else:
            self._tally.publish_failures += 1

    def _telemetry(self, agent: DeviceAgent, event: PlannedEvent) -> None:
        """Publish a telemetry report (QoS 1: a demo should not lose the drift it shows)."""
        sent_at = utc_now() - timedelta(seconds=event.age_s)
        info = agent.publish_telemetry(1, measures=event.telemetry, sent_at=sent_at)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._tally.publish_failures += 1

    def _status(self, phase: Phase, backlog: int | None = None) -> None:
        now = time.monotonic()
        if now - self._last_status < STATUS_EVERY_S:
            return
        self._last_status = now
        status = ShardStatus(
            phase=phase,
            faults_raised=self._tally.faults_raised,
            duplicates_sent=self._tally.duplicates_sent,
            connected=sum(agent.is_connected for agent in self._agents),
            offline=len(self._offline),
            backlog=sum(a.backlog for a in self._agents) if backlog is None else backlog,
        )
        self._send("status", status)

    def _send(self, kind: str, body: Any) -> None:
        self._sink.put(ShardMessage(kind, self.job.index, body))


def run_shard(job: ShardJob, inbox: Channel, sink: Channel) -> None:
    """Worker entry point (thread or process): run the shard, report a crash, re-raise it."""
    try:
        ShardRunner(job, inbox, sink).run()
    except BaseException as exc:
        sink.put(ShardMessage("failed", job.index, "".join(traceback.format_exception(exc))))
        raise


def run_shard_process(job: ShardJob, inbox: Channel, sink: Channel) -> None:
    """Process entry point: Ctrl-C reaches the whole process group, but only the coordinator
    acts on it (it cancels every shard, which then drains cleanly)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_shard(job, inbox, sink)

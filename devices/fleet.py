"""Fleet simulator: many device agents against one broker, driven by a seeded scenario.

``FleetSimulator.run()`` plans the scenario (``devices.scenario.plan``), splits the devices
into shards of at most ``max_devices_per_process`` (one shard runs in a thread; more run in
their own processes, see ``devices.fleet_worker`` for why), starts every shard's clock at the
same instant, aggregates progress, waits for every outbox to drain and returns a summary.
Each device has its own paho client, outbox file and state: devices share nothing.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import queue
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from pathlib import Path

from pydantic import BaseModel

from devices.config import AgentConfig, IngestRules, credential_files
from devices.fleet_worker import (
    CANCEL,
    GO,
    Channel,
    Phase,
    ShardJob,
    ShardMessage,
    ShardResult,
    ShardStatus,
    run_shard,
    run_shard_process,
)
from devices.scenario import (
    DeviceSpec,
    FleetConfigError,
    PlannedEvent,
    Scenario,
    plan,
    validate_fleet,
)

LOGGER = logging.getLogger(__name__)

DEFAULT_DEVICES_PER_PROCESS = 100
SELECT_FD_LIMIT = 1024
# Per device: SQLite db + WAL + shm, the agent lock file, the socket and paho's socket pair.
FDS_PER_DEVICE = 8
FD_HEADROOM = 64
PROGRESS_EVERY_S = 1.0
START_DELAY_S = 0.2
WORKER_POLL_S = 1.0
WORKER_EXIT_GRACE_S = 30.0


class FleetError(RuntimeError):
    """A fleet worker crashed or vanished; the message carries its traceback or exit code."""


@dataclass(frozen=True, slots=True)
class FleetProgress:
    """A progress report, sent about once a second while the fleet runs."""

    elapsed_s: float
    duration_s: float
    phase: str
    faults_raised: int
    duplicates_sent: int
    connected_devices: int
    offline_devices: int
    backlog: int


class FleetSummary(BaseModel):
    """What a run did; ``outbox_backlog`` should be 0 once every outbox has drained."""

    devices: int
    shards: int
    connected_at_start: int
    faults_raised: int
    storm_faults: int
    offline_faults: int
    duplicates_sent: int
    offline_episodes: int
    faults_delivered: int
    publish_failures: int
    outbox_backlog: int
    per_code: dict[str, int]
    elapsed_s: float


def ensure_fd_budget(devices: int) -> None:
    """Raise the soft open-files limit if one process needs more; fail clearly if it cannot."""
    needed = devices * FDS_PER_DEVICE + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise FleetConfigError(
                f"{devices} devices per process need about {needed} open files; the hard limit"
                f" is {hard} (raise it with `ulimit -Hn` or lower max_devices_per_process)"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def split_into_shards(count: int, per_shard: int) -> list[list[int]]:
    """Device indexes in ``ceil(count / per_shard)`` balanced, contiguous groups."""
    shards = max(1, math.ceil(count / per_shard))
    size, extra = divmod(count, shards)
    groups, start = [], 0
    for shard in range(shards):
        end = start + size + (1 if shard < extra else 0)
        groups.append(list(range(start, end)))
        start = end
    return groups


@dataclass
class _Worker:
    """A shard's thread or process and the queue it takes commands from."""

    index: int
    inbox: Channel
    handle: threading.Thread | BaseProcess

    def put(self, command: tuple[str, ...] | tuple[str, float]) -> None:
        self.inbox.put(command)


@dataclass
class _Progress:
    """Aggregates shard statuses into rate-limited ``FleetProgress`` reports."""

    callback: Callable[[FleetProgress], None] | None
    duration_s: float
    started: float | None = None
    statuses: dict[int, ShardStatus] = field(default_factory=dict)
    last: float = float("-inf")

    def update(self, shard: int, status: ShardStatus, *, force: bool = False) -> None:
        self.statuses[shard] = status
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last < PROGRESS_EVERY_S):
            return
        self.last = now
        values = list(self.statuses.values())
        self.callback(
            FleetProgress(
                elapsed_s=round(now - self.started, 1) if self.started is not None else 0.0,
                duration_s=self.duration_s,
                phase=min(s.phase for s in values).name.lower(),
                faults_raised=sum(s.faults_raised for s in values),
                duplicates_sent=sum(s.duplicates_sent for s in values),
                connected_devices=sum(s.connected for s in values),
                offline_devices=sum(s.offline for s in values),
                backlog=sum(s.backlog for s in values),
            )
        )


class FleetSimulator:
    """Plays a scenario with one ``DeviceAgent`` per device against one broker.

    ``codes_by_model`` comes from the fault catalog; ``remote_fixable_codes`` lets simulated
    devices fix those faults when ``reset_component`` asks. ``cancel()`` (from any thread) ends
    the playing early; the outboxes are still drained. ``credentials_dir`` holds one directory of
    certificate files per thing (the local stack's ``devices_dir``) for an ``mqtts://`` broker;
    ``ingest_rules`` (the stack's, ``IngestRules.of_stack``) makes them report by Basic Ingest.
    """

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        scenario: Scenario,
        broker_url: str,
        outbox_dir: Path,
        progress: Callable[[FleetProgress], None] | None = None,
        *,
        codes_by_model: Mapping[str, Sequence[str]],
        remote_fixable_codes: frozenset[str] = frozenset(),
        max_devices_per_process: int = DEFAULT_DEVICES_PER_PROCESS,
        credentials_dir: Path | None = None,
        ingest_rules: IngestRules | None = None,
    ) -> None:
        validate_fleet(devices, scenario, codes_by_model)
        if max_devices_per_process < 1:
            raise FleetConfigError("max_devices_per_process must be at least 1")
        self.devices = list(devices)
        self.scenario = scenario
        self.codes_by_model = codes_by_model
        self._configs = [
            AgentConfig(
                thing=spec.thing,
                model=spec.model,
                broker_url=broker_url,
                outbox_dir=outbox_dir,
                firmware=scenario.firmware,
                keepalive_s=30,
                reconnect_max_delay_s=5,
                outbox_fsync=False,
                remote_fixable_codes=remote_fixable_codes,
                ingest_rules=ingest_rules,
                **(credential_files(credentials_dir / spec.thing) if credentials_dir else {}),
            )
            for spec in self.devices
        ]
        self._per_process = max_devices_per_process
        self._progress = progress
        self._workers: list[_Worker] = []
        self._cancelled = threading.Event()
        self._connected: set[int] = set()
        self._results: dict[int, ShardResult] = {}
        self._tracker = _Progress(progress, scenario.duration_s)

    def cancel(self) -> None:
        self._cancelled.set()
        for worker in self._workers:
            worker.put((CANCEL,))

    def run(self) -> FleetSummary:
        """Connect every device, play the plan in real time, drain, disconnect, summarise.

        Ctrl-C ends the playing early and still drains and summarises; a second one aborts.
        Big fleets run in spawned processes: call this under ``if __name__ == "__main__":``.
        """
        jobs = self._jobs(plan(self.devices, self.scenario, self.codes_by_model))
        per_process = max(len(job.configs) for job in jobs)
        ensure_fd_budget(per_process)
        began = time.monotonic()
        self._connected.clear()
        self._results.clear()
        self._tracker = _Progress(self._progress, self.scenario.duration_s)
        sink = self._start_workers(jobs, in_thread=len(jobs) == 1 and _fits_here(per_process))
        try:
            self._coordinate_until_done(sink)
        finally:
            self._shut_down_workers()
        results = [self._results[index] for index in sorted(self._results)]
        return _summarise(results, len(self.devices), time.monotonic() - began)

    def _jobs(self, events: list[PlannedEvent]) -> list[ShardJob]:
        jobs = []
        for index, members in enumerate(split_into_shards(len(self.devices), self._per_process)):
            local = {device: n for n, device in enumerate(members)}
            jobs.append(
                ShardJob(
                    index=index,
                    configs=[self._configs[device] for device in members],
                    events=[
                        replace(event, device=local[event.device])
                        for event in events
                        if event.device in local
                    ],
                    duration_s=self.scenario.duration_s,
                    connect_timeout_s=self.scenario.connect_timeout_s,
                    drain_timeout_s=self.scenario.drain_timeout_s,
                )
            )
        return jobs

    def _start_workers(self, jobs: list[ShardJob], *, in_thread: bool) -> Channel:
        if in_thread:
            sink: Channel = queue.Queue()
            inbox: Channel = queue.Queue()
            thread = threading.Thread(
                target=run_shard, args=(jobs[0], inbox, sink), name="aftercare-fleet", daemon=True
            )
            self._workers = [_Worker(0, inbox, thread)]
        else:
            # spawn, not fork: the parent may already run threads (paho, logging, the caller's).
            context = multiprocessing.get_context("spawn")
            sink = context.Queue()
            self._workers = []
            for job in jobs:
                inbox = context.Queue()
                process = context.Process(
                    target=run_shard_process,
                    args=(job, inbox, sink),
                    name=f"aftercare-fleet-{job.index}",
                    daemon=True,
                )
                self._workers.append(_Worker(job.index, inbox, process))
        for worker in self._workers:
            worker.handle.start()
        if self._cancelled.is_set():
            self.cancel()
        return sink

    def _coordinate_until_done(self, sink: Channel) -> None:
        try:
            self._coordinate(sink)
        except KeyboardInterrupt:
            LOGGER.warning("interrupted: ending the run early, draining outboxes (again to abort)")
            self.cancel()
            self._coordinate(sink)

    def _coordinate(self, sink: Channel) -> None:
        """Relay shard messages until every shard is done; state survives an interruption."""
        while len(self._results) < len(self._workers):
            message = self._next_message(sink)
            if message.kind == "connected":
                self._connected.add(message.shard)
                self._tracker.update(message.shard, _connecting(message.body))
                if len(self._connected) == len(self._workers):
                    self._tracker.started = self._go()
            elif message.kind == "status":
                self._tracker.update(message.shard, message.body)
            elif message.kind == "done":
                self._results[message.shard] = message.body
                self._tracker.update(message.shard, _done(message.body), force=True)
            elif message.kind == "failed":
                raise FleetError(f"fleet shard {message.shard} failed:\n{message.body}")

    def _next_message(self, sink: Channel) -> ShardMessage:
        while True:
            try:
                message: ShardMessage = sink.get(timeout=WORKER_POLL_S)
                return message
            except queue.Empty:
                pass
            for worker in self._workers:
                if worker.index not in self._results and not worker.handle.is_alive():
                    code = getattr(worker.handle, "exitcode", None)
                    raise FleetError(f"fleet shard {worker.index} exited early (exit code {code})")

    def _go(self) -> float:
        """Start every shard's clock at the same wall-clock instant."""
        start_at = time.time() + START_DELAY_S
        for worker in self._workers:
            worker.put((GO, start_at))
        return time.monotonic() + START_DELAY_S

    def _shut_down_workers(self) -> None:
        for worker in self._workers:
            worker.put((CANCEL,))
        deadline = time.monotonic() + self.scenario.drain_timeout_s + WORKER_EXIT_GRACE_S
        for worker in self._workers:
            worker.handle.join(max(deadline - time.monotonic(), 0))
            if worker.handle.is_alive() and isinstance(worker.handle, BaseProcess):
                LOGGER.error("fleet shard %d did not exit; terminating it", worker.index)
                worker.handle.terminate()


def _fits_here(devices: int) -> bool:
    """Whether this process can add ``devices`` without a socket numbered past select()'s limit."""
    fd_dir = Path("/proc/self/fd")
    open_now = len(list(fd_dir.iterdir())) if fd_dir.is_dir() else FD_HEADROOM
    return open_now + devices * FDS_PER_DEVICE < SELECT_FD_LIMIT


def _connecting(connected: int) -> ShardStatus:
    return ShardStatus(Phase.CONNECTING, 0, 0, connected, 0, 0)


def _done(result: ShardResult) -> ShardStatus:
    return ShardStatus(
        Phase.DONE, result.faults_raised, result.duplicates_sent, 0, 0, result.outbox_backlog
    )


def _summarise(results: list[ShardResult], devices: int, elapsed_s: float) -> FleetSummary:
    per_code: Counter[str] = Counter()
    for result in results:
        per_code.update(result.per_code)
    return FleetSummary(
        devices=devices,
        shards=len(results),
        connected_at_start=sum(r.connected_at_start for r in results),
        faults_raised=sum(r.faults_raised for r in results),
        storm_faults=sum(r.storm_faults for r in results),
        offline_faults=sum(r.offline_faults for r in results),
        duplicates_sent=sum(r.duplicates_sent for r in results),
        offline_episodes=sum(r.offline_episodes for r in results),
        faults_delivered=sum(r.faults_delivered for r in results),
        publish_failures=sum(r.publish_failures for r in results),
        outbox_backlog=sum(r.outbox_backlog for r in results),
        per_code=dict(sorted(per_code.items())),
        elapsed_s=round(elapsed_s, 3),
    )

"""The open-loop publisher, in shard processes.

paho waits on its sockets with select(), which cannot watch a descriptor above 1024, and each
client holds three; so at most `DEVICES_PER_SHARD` devices share a process (as the fleet
simulator does). Every shard publishes its share of one global schedule, fault i at
`start + i / rate` on the wall clock, whatever happened to the previous ones, and answers its
devices' diagnostics requests until it is told to stop.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from pathlib import Path

from infra.bench import fleet

DEVICES_PER_SHARD = 150
START_DELAY_S = 0.5
READY_TIMEOUT_S = 120.0
STOP = "stop"

Planned = tuple[int, str, str]  # (index in the global schedule, thing, code)
Sent = dict[tuple[str, str], float]  # (thing, code) -> wall-clock publish time


def shard_of(things: Sequence[str], plan: Sequence[tuple[int, str]]) -> list[list[Planned]]:
    """The global schedule split by device, at most DEVICES_PER_SHARD devices per shard."""
    shards = max(1, math.ceil(len(things) / DEVICES_PER_SHARD))
    split: list[list[Planned]] = [[] for _ in range(shards)]
    for index, (device, code) in enumerate(plan):
        split[device % shards].append((index, things[device], code))
    return split


def run_shard(
    state_dir: str, mqtt_url: str, planned: list[Planned], rate: float, link: Connection
) -> None:
    """A shard process: connect, say ready, publish on the schedule, report, answer, stop."""
    things = sorted({thing for _, thing, _ in planned})
    try:
        devices = {d.thing: d for d in fleet.connect_all(Path(state_dir), mqtt_url, things)}
    except RuntimeError as exc:
        link.send(("error", str(exc)))
        return
    link.send(("ready", len(devices)))
    start = link.recv()
    if start == STOP:  # another shard failed
        _stop(devices.values())
        return
    start_at = float(start)
    sent: Sent = {}
    for index, thing, code in planned:
        delay = start_at + index / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[(thing, code)] = devices[thing].publish_fault(code, fleet.new_fault_id())
    link.send(("sent", sent))
    link.recv()  # STOP: until then the devices answer their diagnostics requests
    counts = {
        "pubacks": sum(d.acked for d in devices.values()),
        "diag_answers": sum(d.answered for d in devices.values()),
    }
    latencies = [s for d in devices.values() for s in d.puback_latencies()]
    link.send(("stopped", (counts, latencies)))
    _stop(devices.values())


def _stop(devices: Iterable[fleet.BenchDevice]) -> None:
    for device in devices:
        device.stop()


@contextmanager
def shards(
    state_dir: Path, mqtt_url: str, split: list[list[Planned]], rate: float
) -> Iterator[list[Connection]]:
    """Shard processes, connected and ready; stopped (and joined) on exit."""
    context = multiprocessing.get_context("spawn")
    links, processes = [], []
    for planned in split:
        parent, child = context.Pipe()
        process = context.Process(
            target=run_shard, args=(str(state_dir), mqtt_url, planned, rate, child), daemon=True
        )
        process.start()
        links.append(parent)
        processes.append(process)
    try:
        for link in links:
            if not link.poll(READY_TIMEOUT_S):
                raise RuntimeError("a publisher shard did not connect its devices in time")
            kind, detail = link.recv()
            if kind != "ready":
                raise RuntimeError(f"publisher shard failed: {detail}")
        yield links
    finally:
        for link in links:
            with suppress(OSError):  # finished, or gone already
                link.send(STOP)
        for process in processes:
            process.join(timeout=15)
            if process.is_alive():
                process.terminate()


def finish(links: list[Connection]) -> tuple[dict[str, int], list[float]]:
    """Stop the shards: the PUBACKs their devices received and the diagnostics requests they
    answered, and each fault's publish -> PUBACK seconds."""
    totals = {"pubacks": 0, "diag_answers": 0}
    latencies: list[float] = []
    for link in links:
        link.send(STOP)
    for link in links:
        if link.poll(READY_TIMEOUT_S):
            _kind, (counts, shard_latencies) = link.recv()
            totals = {key: totals[key] + counts[key] for key in totals}
            latencies += shard_latencies
    return totals, latencies


def publish(links: list[Connection], faults: int, rate: float) -> tuple[Sent, float]:
    """Start every shard at once; wait for their publish times. Returns (sent, seconds)."""
    start_at = time.time() + START_DELAY_S
    for link in links:
        link.send(start_at)
    sent: Sent = {}
    deadline = time.monotonic() + START_DELAY_S + faults / rate + READY_TIMEOUT_S
    for link in links:
        if not link.poll(max(0.0, deadline - time.monotonic())):
            raise RuntimeError("a publisher shard did not finish its schedule")
        _kind, shard_sent = link.recv()
        sent.update(shard_sent)
    last = max(sent.values(), default=start_at)
    return sent, max(last - start_at + 1 / rate, faults / rate)

"""One load phase: fresh devices publish at a fixed rate for a fixed time (open loop), then the
stack drains and every fault's path is timed from the stack's own records."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.bench import cpu, fleet, publisher
from infra.bench.observe import (
    OWN_REQUESTS,
    FunctionLogs,
    TicketStream,
    aws_client,
    first_notifications,
    moto_stats,
    stats_delta,
)
from infra.bench.stats import latencies, summary

POLL_S = 0.5


@dataclass(frozen=True)
class PhasePlan:
    name: str
    rate: float
    seconds: float
    drain_s: float
    downstream: bool  # notifications and diagnostics expected (the whole stack runs)

    @property
    def faults(self) -> int:
        return max(1, round(self.rate * self.seconds))


def schedule(faults: int, devices: int) -> list[tuple[int, str]]:
    """(device index, code) of each fault: every device once per code before any repeats, so
    every fault of a phase is a distinct device + code (a new ticket)."""
    if faults > devices * len(fleet.CODES):
        raise ValueError(f"{faults} faults need more than {devices} devices")
    return [(i % devices, fleet.CODES[i // devices]) for i in range(faults)]


def run_phase(
    state: Mapping[str, Any], state_dir: Path, plan: PhasePlan, idle_rps: Mapping[str, float]
) -> dict[str, Any]:
    ddb = aws_client("dynamodb", state)
    count = math.ceil(plan.faults / len(fleet.CODES))
    customers = fleet.bench_customers(plan.name, count)  # one each: no digests
    records = fleet.bench_devices(plan.name, count, customers)
    fleet.register(ddb, state["resources"], records, customers)
    things = [d.thing for d in records]
    split = publisher.shard_of(things, schedule(plan.faults, count))
    with publisher.shards(state_dir, state["mqtt_url"], split, plan.rate) as links:
        stream = TicketStream(state)
        before, own, logs = moto_stats(state), OWN_REQUESTS.copy(), FunctionLogs(state)
        cpu_before = cpu.snapshot(state["pids"])
        sent, publish_s = publisher.publish(links, plan.faults, plan.rate)
        drained_s = _drain(stream, plan, len(sent))  # the devices still answer diagnostics
        after, own = moto_stats(state), OWN_REQUESTS - own
        cpu_after = cpu.snapshot(state["pids"])
        notified = _notifications(state, stream, plan, count, before) if plan.downstream else {}
        devices, puback_s = publisher.finish(links)
    events = stream.events
    # Per-fault figures count the faults the stack finished within the window (a saturated
    # rate's backlog is still being worked through when the window closes).
    processed = max(1, len(set(sent) & set(events.ticket_written)))
    result: dict[str, Any] = {
        "rate": plan.rate,
        "seconds": plan.seconds,
        "faults": len(sent),
        "achieved_rate": round(len(sent) / max(publish_s, 1e-9), 2),
        "drained_after_s": round(drained_s, 2),
        # The reference: the broker's own share, measured on the same faults.
        "fault_to_puback": summary(puback_s, len(sent)),
        "fault_to_ticket": summary(latencies(sent, events.ticket_written), len(sent)),
        "faults_processed": processed,
        "devices": {"count": count, **devices},
        "functions": logs.since(per=processed),
        "moto": moto_figures(stats_delta(before, after, own), processed, idle_rps),
        # The stack's processes (not the publishing devices), idle background included.
        "cpu_ms_per_fault": cpu.per_fault_ms(cpu_before, cpu_after, processed),
    }
    if plan.downstream:
        # A customer's later tickets within the digest window are combined into one message
        # (by design): the figure is each customer's first fault -> first message.
        result["fault_to_first_notification"] = summary(
            latencies(first_per_thing(sent), first_per_thing(notified)), count
        )
        result["diagnostics_round_trip"] = summary(
            latencies(events.diag_requested, events.diag_done), len(events.diag_requested)
        )
    return result


def _drain(stream: TicketStream, plan: PhasePlan, expected: int) -> float:
    """Follow the stream until every ticket (and diagnostics result) is in, or the drain ends."""
    began = time.monotonic()
    while time.monotonic() - began < plan.drain_s:
        stream.poll()
        events = stream.events
        tickets_done = len(events.ticket_written) >= expected
        diag_done = not plan.downstream or (
            len(events.diag_requested) >= expected and len(events.diag_done) >= expected
        )
        if tickets_done and diag_done:
            break
        time.sleep(POLL_S)
    return time.monotonic() - began


def first_per_thing(times: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """The earliest time per device of a (thing, code) -> time map."""
    first: dict[str, float] = {}
    for (thing, _code), at in times.items():
        first[thing] = min(at, first.get(thing, at))
    return first


def _notifications(
    state: Mapping[str, Any],
    stream: TicketStream,
    plan: PhasePlan,
    expected: int,
    since: Mapping[str, Any],
) -> dict[tuple[str, str], float]:
    """Wait until the stack has sent `expected` messages since `since` (counted from moto's
    stats, which take no lock), then read the attempts once: scanning the table while waiting
    would slow the very notifier being timed (moto serves one request at a time)."""
    deadline = time.monotonic() + plan.drain_s / 2
    while time.monotonic() < deadline:
        operations = stats_delta(since, moto_stats(state))["operations"]
        if messages_sent(operations) >= expected:
            break
        time.sleep(POLL_S)
    return first_notifications(state, stream.events.ticket_of)


def messages_sent(operations: Mapping[str, Mapping[str, Any]]) -> int:
    """Customer messages among moto's operations: SES sends and SNS publishes."""
    return sum(
        figures["requests"]
        for op, figures in operations.items()
        if op.startswith("SES.Send") or op == "SNS.Publish"
    )


def moto_figures(
    delta: Mapping[str, Any], faults: int, idle_rps: Mapping[str, float]
) -> dict[str, Any]:
    """Requests per fault by operation (the idle background, measured in the same run, taken
    off), how busy the one-at-a-time servers were (the busiest, and each), and the ceiling:
    requests per busy second (of one server)."""
    wall = delta["wall_s"]
    operations = delta["operations"]
    requests = sum(op["requests"] for op in operations.values())
    busy = sum(op["busy_s"] for op in operations.values())
    per_fault = {}
    for op, figures in sorted(operations.items()):
        net = figures["requests"] - idle_rps.get(op, 0.0) * wall
        if net > 0.05 * faults:
            per_fault[op] = round(net / faults, 2)
    # Each server has its own one-at-a-time lock: the share used is the busiest server's.
    by_server = {
        name: round(figures["busy_s"] / max(wall, 1e-9), 3)
        for name, figures in delta.get("servers", {}).items()
    }
    return {
        "wall_s": round(wall, 2),
        "requests": requests,
        "requests_per_s": round(requests / max(wall, 1e-9), 1),
        "busy_share": max(by_server.values(), default=round(busy / max(wall, 1e-9), 3)),
        "busy_share_by_server": by_server,
        # Every request served (the benchmark's own too) over the seconds the lock was held.
        "ceiling_requests_per_s": round(delta["served"] / busy, 1) if busy else None,
        "requests_per_fault": per_fault,
    }


def idle_background(state: Mapping[str, Any], seconds: float) -> dict[str, float]:
    """Requests per second per operation with no load (pollers): the reference taken off."""
    before, own = moto_stats(state), OWN_REQUESTS.copy()
    time.sleep(seconds)
    delta = stats_delta(before, moto_stats(state), OWN_REQUESTS - own)
    return {op: f["requests"] / delta["wall_s"] for op, f in delta["operations"].items()}


def wait_quiet(state: Mapping[str, Any], idle_rps: Mapping[str, float], limit_s: float) -> float:
    """Wait until, for a whole second, moto serves nothing but the idle pollers' operations (or
    `limit_s` passes); returns the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        before, own = moto_stats(state), OWN_REQUESTS.copy()
        time.sleep(1.0)
        delta = stats_delta(before, moto_stats(state), OWN_REQUESTS - own)
        if not [op for op in delta["operations"] if op not in idle_rps]:
            break
    return time.monotonic() - began

"""DynamoDB capacity units per new, correlated and duplicate fault and per notification.

With request capture on (see `infra.bench.capture`), three fresh devices each raise a fault
(new), then a second report of the same code (correlated), then that report again (duplicate);
each step waits until the stack has finished with it. The units come from the recorded
requests (`infra.bench.capacity`), split by step and by function; the global secondary
index writes are computed from the written items' images and the template's index definitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.bench import capacity, fleet
from infra.bench.capture import SWITCH, clear, read_records
from infra.bench.observe import TicketStream, aws_client, first_notifications

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DEVICES = 3
CODE = "TEMP-HIGH"
WAIT_S = 30.0
SETTLE_S = 2.0


def measure_capacity(
    state: Mapping[str, Any], state_dir: Path, capture_dir: Path
) -> dict[str, Any]:
    ddb = aws_client("dynamodb", state)
    customers = fleet.bench_customers("bench-cu", DEVICES)
    records = fleet.bench_devices("bench-cu", DEVICES, customers)
    fleet.register(ddb, state["resources"], records, customers)
    devices = fleet.connect_all(state_dir, state["mqtt_url"], [d.thing for d in records])
    stream = TicketStream(state)
    clear(capture_dir)
    (capture_dir / SWITCH).touch()
    windows: dict[str, tuple[float, float]] = {}
    try:
        windows["new"] = _step(lambda: _raise_all(devices, {}), stream, _tickets_and_diag(DEVICES))
        again: dict[str, bytes] = {}
        windows["correlated"] = _step(lambda: _raise_all(devices, again), stream, _occurrences(2))
        windows["duplicate"] = _step(lambda: _repeat(devices, again), stream, _sleep_only)
    finally:
        (capture_dir / SWITCH).unlink(missing_ok=True)
        for device in devices:
            device.stop()
    notifications = first_notifications(state, stream.events.ticket_of)
    return units_report(
        read_records(capture_dir),
        windows,
        _names(state),
        _final_sizes(ddb),
        len(notifications),
        indexes=capacity.TableIndexes.from_template(TEMPLATE),
    )


def _raise_all(devices: list[fleet.BenchDevice], keep: dict[str, bytes]) -> None:
    for device in devices:
        payload = fleet.fault_payload(device.thing, CODE, fleet.new_fault_id())
        keep[device.thing] = payload
        device.publish_payload(payload)


def _repeat(devices: list[fleet.BenchDevice], payloads: Mapping[str, bytes]) -> None:
    for device in devices:
        device.publish_payload(payloads[device.thing])


def _tickets_and_diag(count: int) -> Callable[[TicketStream], bool]:
    def done(stream: TicketStream) -> bool:
        events = stream.events
        return len(events.ticket_written) >= count and len(events.diag_done) >= count

    return done


def _occurrences(count: int) -> Callable[[TicketStream], bool]:
    def done(stream: TicketStream) -> bool:
        seen = stream.events.occurrences.values()
        return len(seen) >= DEVICES and all(n >= count for n in seen)

    return done


def _sleep_only(_: TicketStream) -> bool:
    return False


def _step(
    act: Callable[[], None], stream: TicketStream, done: Callable[[TicketStream], bool]
) -> tuple[float, float]:
    began = time.time()
    act()
    deadline = time.monotonic() + (WAIT_S if done is not _sleep_only else 2 * SETTLE_S)
    while time.monotonic() < deadline:
        stream.poll()
        if done(stream):
            break
        time.sleep(0.3)
    time.sleep(SETTLE_S)  # the stream consumers' work caused by this step
    return began, time.time()


def _names(state: Mapping[str, Any]) -> dict[str, str]:
    return {info["function_name"]: lid for lid, info in state["functions"].items()}


def _final_sizes(ddb: Any) -> capacity.FinalSize:
    cache: dict[tuple[str, str], int | None] = {}

    def size(table: str, key: Mapping[str, Any]) -> int | None:
        name = (table, capacity.key_text(key))
        if name not in cache:
            item = ddb.get_item(TableName=table, Key=dict(key), ConsistentRead=True).get("Item")
            cache[name] = capacity.item_size(item) if item else None
        return cache[name]

    return size


def units_report(
    records: list[dict[str, Any]],
    windows: Mapping[str, tuple[float, float]],
    names: Mapping[str, str],
    final_size: capacity.FinalSize,
    notifications: int,
    *,
    indexes: capacity.TableIndexes | None = None,
) -> dict[str, Any]:
    """Per step: units per fault by function; plus the notifier's units per notification."""
    report: dict[str, Any] = {
        "devices": DEVICES,
        "code": CODE,
        "gsi_counted": indexes is not None,
        "steps": {},
    }
    for step, (began, ended) in windows.items():
        inside = [r for r in records if began <= r["t"] < ended]
        by_function: dict[str, list[dict[str, Any]]] = {}
        for record in inside:
            by_function.setdefault(names.get(record["function"], record["function"]), []).append(
                record
            )
        report["steps"][step] = {
            function: capacity.units_of(calls, final_size, indexes).as_dict(per=DEVICES)
            for function, calls in sorted(by_function.items())
        }
    notifier = [r for r in records if names.get(r["function"]) == "NotifierFunction"]
    report["notifications_sent"] = notifications
    if notifications:
        report["per_notification"] = capacity.units_of(notifier, final_size, indexes).as_dict(
            per=notifications
        )
    return report

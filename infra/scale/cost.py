"""The cost of the simulated hour, priced by `make cost`'s own models (infra/bench/cost.py) from
bench/results.json and bench/prices.json: a figure per event times the hour's event counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.bench.cost import (
    Line,
    Prices,
    basic_ingest,
    intake_model,
    lambda_settings,
    stack_model,
)

STACK = "new fault, whole stack"
FAULT_PATH = "new fault, fault path"
DUPLICATE = "duplicate fault, fault path"
NOTIFICATION = "notification (email)"


def usd_per_event(lines: list[Line], *, without: tuple[str, ...] = ()) -> float:
    return (
        sum(line.usd_per_million_events for line in lines if not line.item.startswith(without))
        / 1_000_000
    )


@dataclass(frozen=True)
class UnitCosts:
    """USD per event, each from one of the cost model's per-million figures."""

    ticket_fault_path: float  # intake of a new fault (IoT, SQS, Lambda, DynamoDB)
    diagnostic_round_trip: float  # the rest of the whole stack per new fault
    redelivery: float  # a redelivered record: SQS, Lambda and the reads, no new publish
    email: float  # one email notification
    other_message: float  # push/SMS: the notifier's part (SNS is not in the price file)
    telemetry_message: float  # one report into IoT Core: its rule and SQS action, the message
    # itself too unless the devices report by Basic Ingest (the bench's devices say which)
    read_unit: float  # one DynamoDB on-demand read request unit
    write_unit: float  # one DynamoDB on-demand write request unit

    @property
    def ticket_whole_stack(self) -> float:
        return self.ticket_fault_path + self.diagnostic_round_trip


def unit_costs(results: Mapping[str, Any], prices: Prices, template: Path) -> UnitCosts:
    memory = lambda_settings(template)
    models = {**intake_model(prices, results, memory), **stack_model(prices, results, memory)}
    fault_path = usd_per_event(models[FAULT_PATH])
    notification = models.get(NOTIFICATION, [])
    return UnitCosts(
        ticket_fault_path=fault_path,
        diagnostic_round_trip=usd_per_event(models[STACK]) - fault_path,
        redelivery=usd_per_event(models[DUPLICATE], without=("IoT",)),
        email=usd_per_event(notification),
        other_message=usd_per_event(notification, without=("SES",)),
        telemetry_message=(
            0.0 if basic_ingest(results["full_stack"]) else prices.per_unit("iot_message")
        )
        + prices.per_unit("iot_rule_triggered")
        + prices.per_unit("iot_rule_action"),
        read_unit=prices.per_unit("dynamodb_read_request_unit"),
        write_unit=prices.per_unit("dynamodb_write_request_unit"),
    )


def hour_cost(totals: Mapping[str, float], units: UnitCosts) -> dict[str, float]:
    """USD per item for the hour's counts: every ticket's fault path, every diagnostic round
    trip (today: one per ticket, so ticket + diagnostic is the whole-stack figure), every
    redelivery of a conflicted record, every message, every telemetry message; and what the
    measured fault path does not hold of the storm counter (derived, `counter.py`): its shard
    reads past the precheck and the write units its growing items cost above the measured
    update."""
    messages = sum(v for k, v in totals.items() if k.endswith("_messages"))
    emails = totals.get("email_messages", 0.0)
    items = {
        "tickets (fault path)": totals["tickets"] * units.ticket_fault_path,
        "diagnostic round trips": totals["diagnostics"] * units.diagnostic_round_trip,
        "redeliveries (conflicts)": (totals["retries"] + totals["dead_lettered"])
        * units.redelivery,
        "notifications": emails * units.email + (messages - emails) * units.other_message,
        "telemetry (IoT Core)": totals["telemetry"] * units.telemetry_message,
        "storm counter reads and growth": totals.get("storm_counter_read_units", 0.0)
        * units.read_unit
        + totals.get("storm_counter_extra_write_units", 0.0) * units.write_unit,
    }
    items["total"] = sum(items.values())
    return items

"""`make scale`: a minute-by-minute scale model of the fleet on today's design (no AWS calls).

    python -m infra.scale --devices 1000000 [--storm-devices 50000 --storm-minutes 10]
        [--fault-rate-per-device-day X] [--minutes 60] [--design today|incident] [--json]

Inputs: template.yaml (batch sizes, windows, concurrency, queues), bench/results.json (the
measured per-fault Lambda time, DynamoDB units and the cost model's counts), bench/prices.json,
infra/scale/limits.yaml (each AWS limit with its documented value and page)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from aftercare.domain.incidents import load_incident_policy

from infra.bench.cost import Prices
from infra.scale.cost import hour_cost, unit_costs
from infra.scale.counter import StormCounter
from infra.scale.limits import load_limits
from infra.scale.measured import RESULTS, load_results, measured_from
from infra.scale.model import Inputs, simulate
from infra.scale.render import as_json, report
from infra.scale.scenario import DESIGNS, TODAY, IncidentPolicy, Scenario
from infra.scale.settings import ROOT, TEMPLATE, read_settings
from infra.scale.verdict import verdicts


def storm_part_shards() -> int:
    """The storm part's stock shards as shipped: the largest `stock_shards` of parts.yaml."""
    from infra.seeding import parts_data

    return max(int(p.get("stock_shards", 1)) for p in parts_data()["parts"].values())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.scale", description=__doc__)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--minutes", type=int, default=60)
    p.add_argument("--fault-rate-per-device-day", type=float, default=0.001)
    p.add_argument("--storm-devices", type=int, default=50_000)
    p.add_argument("--storm-minutes", type=int, default=10)
    p.add_argument("--storm-start", type=int, default=5, help="minute the storm starts")
    p.add_argument("--storm-warehouses", type=int, default=1)
    p.add_argument(
        "--stock-shards",
        type=int,
        default=storm_part_shards(),
        help="stock shard items per warehouse of the storm's part (default: the largest "
        "stock_shards in parts.yaml)",
    )
    p.add_argument(
        "--counter-shards",
        type=int,
        help="storm counter shards (default: incidents.yaml's detection.shards)",
    )
    p.add_argument("--telemetry-every", type=float, default=300.0, metavar="SECONDS")
    p.add_argument("--design", choices=DESIGNS, default=TODAY)
    p.add_argument(
        "--ses-rate", type=float, help="the SES sending rate AWS granted (default: sandbox's)"
    )
    p.add_argument(
        "--transaction-hold-ms",
        type=float,
        help="how long a transaction holds an item (default: limits.yaml's assumption)",
    )
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--prices", type=Path, default=ROOT / "bench" / "prices.json")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        results = load_results(args.results)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    limits = load_limits()
    if args.ses_rate is not None:
        limits = limits.with_value("ses_send_rate", args.ses_rate)
    if args.transaction_hold_ms is not None:
        limits = limits.with_assumption("transaction_hold_ms", args.transaction_hold_ms)
    inputs = Inputs(read_settings(TEMPLATE), measured_from(results), limits)
    scenario = Scenario(
        devices=args.devices,
        minutes=args.minutes,
        fault_rate_per_device_day=args.fault_rate_per_device_day,
        storm_devices=args.storm_devices,
        storm_minutes=args.storm_minutes,
        storm_start_minute=args.storm_start,
        storm_warehouses=args.storm_warehouses,
        stock_shards=args.stock_shards,
        counter=StormCounter.shipped(load_incident_policy(), args.counter_shards),
        telemetry_every_s=args.telemetry_every,
        design=args.design,
        policy=IncidentPolicy(),
    )
    result = simulate(scenario, inputs)
    found = verdicts(scenario, inputs)
    prices = Prices(json.loads(args.prices.read_text(encoding="utf-8")))
    cost = hour_cost(result.totals, unit_costs(results, prices, TEMPLATE))
    meta = {
        "results": str(args.results),
        "measured_at": inputs.measured.taken_at,
        "measured_note": inputs.measured.note,
        "prices_as_of": prices.document["as_of"],
    }
    if args.json:
        print(json.dumps(as_json(result, found, cost, meta), indent=2))
        return 0
    header = (
        f"Aftercare scale model (no AWS calls); per-fault figures from {args.results.name} "
        f"taken {meta['measured_at']}, prices as of {meta['prices_as_of']}"
    )
    print(report(result, found, cost, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())

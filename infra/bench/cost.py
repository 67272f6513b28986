"""`make cost`: the AWS bill per million faults and per million notifications, itemised, from
the figures `make bench` measured (`bench/results.json`) and the list prices in
`bench/prices.json`, at the template's Lambda settings (memory, architecture).

    python -m infra.bench.cost [--results bench/results.json] [--prices bench/prices.json]

What is measured and what is not: DynamoDB units (computed from the recorded requests), SQS
and SES requests (counted by the moto server), Lambda invocations, their duration and log
bytes (the local workers' REPORT lines and log files, so durations include the local moto's
latency). One IoT message per device-to-cloud or cloud-to-device message and one rule trigger
and action per routed message follow from the topology, not from a measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.bench.stats import reference_phase

ROOT = Path(__file__).resolve().parents[2]
MILLION = 1_000_000
INTAKE = "FaultIntakeFunction"
NOTIFIER = "NotifierFunction"


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float  # per event
    unit: str
    usd_per_million_events: float


class Prices:
    """List prices (USD) per unit, from the price file."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._prices = document["prices"]

    def per_unit(self, name: str) -> float:
        price = self._prices[name]
        return float(price["usd"]) / float(price["per"])

    def line(self, item: str, quantity: float, unit: str, price: str) -> Line:
        return Line(item, quantity, unit, quantity * self.per_unit(price) * MILLION)


def lambda_settings(template_path: Path) -> dict[str, tuple[int, str]]:
    """(memory MB, architecture) per function logical id, Globals applied."""

    class TolerantLoader(yaml.SafeLoader):
        pass

    TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load(template_path.read_text(), Loader=TolerantLoader)  # noqa: S506 - SafeLoader subclass
    defaults = (template.get("Globals") or {}).get("Function") or {}
    settings = {}
    for lid, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**defaults, **(resource.get("Properties") or {})}
        settings[lid] = (
            int(props.get("MemorySize", 128)),
            (props.get("Architectures") or ["x86_64"])[0],
        )
    return settings


def lambda_lines(
    prices: Prices,
    functions: Mapping[str, Mapping[str, float]],
    memory: Mapping[str, tuple[int, str]],
    names: Sequence[str],
    *,
    per: float = 1.0,
) -> list[Line]:
    """Requests and GB-seconds of the named functions, per event (figures are per fault; `per`
    rescales, e.g. faults per notification)."""
    invocations = sum(functions.get(n, {}).get("invocations_per_fault", 0.0) for n in names) * per
    gb_s = 0.0
    for name in names:
        figures = functions.get(name)
        if not figures:
            continue
        mb, arch = memory.get(name, (128, "x86_64"))
        if arch != "arm64":
            raise ValueError(f"{name} runs on {arch}; the price file only has arm64 duration")
        gb_s += (
            figures["invocations_per_fault"] * per * figures["mean_duration_ms"] / 1000 * mb / 1024
        )
    return [
        prices.line("Lambda requests", invocations, "invocations", "lambda_request"),
        prices.line("Lambda duration", gb_s, "GB-s", "lambda_gb_second_arm64"),
    ]


def dynamodb_lines(
    prices: Prices,
    units: Mapping[str, Mapping[str, Any]],
    names: Sequence[str],
    *,
    per: float = 1.0,
) -> list[Line]:
    reads = sum(units[n]["read_units"] for n in names if n in units) * per
    writes = sum(units[n]["write_units"] for n in names if n in units) * per
    gsi = sum(units[n].get("gsi_write_units", 0.0) for n in names if n in units) * per
    return [
        prices.line("DynamoDB write request units", writes, "WRU", "dynamodb_write_request_unit"),
        prices.line("DynamoDB GSI write request units", gsi, "WRU", "dynamodb_write_request_unit"),
        prices.line("DynamoDB read request units", reads, "RRU", "dynamodb_read_request_unit"),
    ]


def _short(index: str) -> str:
    """`aftercare-tickets-local/by_status` -> `tickets/by_status`."""
    table, _, name = index.rpartition("/")
    return f"{table.removeprefix('aftercare-').rsplit('-', 1)[0]}/{name}"


def gsi_table(capacity: Mapping[str, Any]) -> list[str]:
    """Index writes per step and function (and per notification), by index."""
    if not capacity.get("gsi_counted"):
        return [
            "GSI write units: not counted in this results file (taken before the bench counted"
            " index writes): the DynamoDB GSI lines above are 0; run `make bench`"
        ]
    lines = [
        "GSI write units per event (computed from the written items and the template's indexes)",
        "| step | function | GSI WRU | by index |",
        "|---|---|---:|---|",
    ]
    rows = [
        (step, function, units)
        for step, functions in capacity.get("steps", {}).items()
        for function, units in functions.items()
    ]
    if capacity.get("per_notification"):
        rows.append(("per notification", NOTIFIER, capacity["per_notification"]))
    for step, function, units in rows:
        by_index = ", ".join(
            f"{_short(name)} {wru:g}"
            for name, wru in units.get("gsi_write_units_by_index", {}).items()
        )
        lines.append(
            f"| {step} | {function} | {units.get('gsi_write_units', 0.0):.3g} | {by_index} |"
        )
    return lines


def requests_of(phase: Mapping[str, Any], prefix: str) -> float:
    return sum(n for op, n in phase["moto"]["requests_per_fault"].items() if op.startswith(prefix))


def observability_lines(
    prices: Prices,
    functions: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
    *,
    per: float = 1.0,
) -> list[Line]:
    """X-Ray with every invocation traced, and every logged byte ingested by CloudWatch Logs."""
    traces = sum(functions.get(n, {}).get("invocations_per_fault", 0.0) for n in names) * per
    log_gb = sum(functions.get(n, {}).get("log_bytes_per_fault", 0.0) for n in names) * per / 1e9
    return [
        prices.line("X-Ray traces (all sampled)", traces, "traces", "xray_trace_recorded"),
        prices.line("CloudWatch Logs ingestion", log_gb, "GB", "cloudwatch_logs_ingested_gb"),
    ]


def basic_ingest(series: Mapping[str, Any]) -> bool:
    """Whether the bench devices reported by Basic Ingest (straight to the rules: IoT Core
    charges no messaging for those); runs before it was recorded went through the broker."""
    return series.get("device_uplink") == "basic_ingest"


def _messages(brokered: str, ingested: str = "") -> str:
    """The IoT Core messaging line's item: what went through the broker, and what did not."""
    return f"IoT Core messages ({brokered or 'none'}" + (
        f"; {ingested} by Basic Ingest, not charged)" if ingested else ")"
    )


def intake_model(
    prices: Prices, results: Mapping[str, Any], memory: Mapping[str, tuple[int, str]]
) -> dict[str, list[Line]]:
    """Fault path only (IoT Core -> rule -> FaultQueue -> FaultIntake), per kind of fault."""
    phase = reference_phase(results["fault_path_only"])
    functions = phase["functions"]
    brokered = 0 if basic_ingest(results["fault_path_only"]) else 1
    common = [
        prices.line(
            _messages("fault") if brokered else _messages("", "fault"),
            brokered,
            "messages",
            "iot_message",
        ),
        prices.line("IoT rules triggered", 1, "rules", "iot_rule_triggered"),
        prices.line("IoT rule actions (SQS)", 1, "actions", "iot_rule_action"),
        prices.line("SQS requests", requests_of(phase, "SQS."), "requests", "sqs_request_standard"),
        *lambda_lines(prices, functions, memory, [INTAKE]),
    ]
    steps = results["capacity_units"]["steps"]
    models = {}
    for kind in ("new", "correlated", "duplicate"):
        models[f"{kind} fault, fault path"] = common + dynamodb_lines(
            prices, steps.get(kind, {}), [INTAKE]
        )
    models["new fault, fault path, X-Ray + logs"] = models[
        "new fault, fault path"
    ] + observability_lines(prices, functions, [INTAKE])
    return models


def stack_model(
    prices: Prices, results: Mapping[str, Any], memory: Mapping[str, tuple[int, str]]
) -> dict[str, list[Line]]:
    """The whole stack per new fault (diagnostics round trip included; the customer's message
    is priced per notification, since a customer's tickets within the digest window share one)."""
    phase = reference_phase(results["full_stack"])
    functions = phase["functions"]
    capacity = results["capacity_units"]
    new_step = {n: u for n, u in capacity["steps"]["new"].items() if n != NOTIFIER}
    others = [n for n in functions if n != NOTIFIER]
    # the diagnostics request always goes through the broker (the device subscribes to it)
    uplinks = 0 if basic_ingest(results["full_stack"]) else 2
    everything = [
        prices.line(
            _messages("fault, diag request, result")
            if uplinks
            else _messages("diag request", "fault, result"),
            1 + uplinks,
            "messages",
            "iot_message",
        ),
        prices.line("IoT rules triggered", 2, "rules", "iot_rule_triggered"),
        prices.line("IoT rule actions (SQS)", 2, "actions", "iot_rule_action"),
        prices.line("SQS requests", requests_of(phase, "SQS."), "requests", "sqs_request_standard"),
        *lambda_lines(prices, functions, memory, others),
        *dynamodb_lines(prices, new_step, list(new_step)),
    ]
    models = {"new fault, whole stack": everything}
    models["new fault, whole stack, X-Ray + logs"] = everything + observability_lines(
        prices, functions, others
    )
    per = capacity.get("per_notification")
    emails = requests_of(phase, "SES.")
    if per and emails:
        faults_per_email = 1 / emails
        models["notification (email)"] = [
            prices.line("SES emails", 1, "emails", "ses_email"),
            *lambda_lines(prices, functions, memory, [NOTIFIER], per=faults_per_email),
            *dynamodb_lines(prices, {NOTIFIER: per}, [NOTIFIER]),
        ]
        models["notification (email), X-Ray + logs"] = models["notification (email)"] + (
            observability_lines(prices, functions, [NOTIFIER], per=faults_per_email)
        )
    return models


def render(models: Mapping[str, list[Line]], prices: Prices) -> str:
    doc = prices.document
    lines = [
        f"AWS cost per million events, {doc['region']} list prices as of {doc['as_of']}"
        f" ({doc['currency']}; {doc['source']})",
        *([f"caveat: {doc['caveat']}"] if doc.get("caveat") else []),
    ]
    for name, items in models.items():
        lines += [
            "",
            f"per million: {name}",
            "| item | per event | unit | USD per million |",
            "|---|---:|---|---:|",
        ]
        lines += [
            f"| {i.item} | {i.quantity:.4g} | {i.unit} | {i.usd_per_million_events:.2f} |"
            for i in items
        ]
        lines.append(f"| **total** | | | **{sum(i.usd_per_million_events for i in items):.2f}** |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.bench.cost", description=__doc__)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--prices", type=Path, default=ROOT / "bench" / "prices.json")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    args = parser.parse_args(argv)
    if not args.results.exists():
        print(f"{args.results} does not exist: run `make bench` first", file=sys.stderr)
        return 2
    results = json.loads(args.results.read_text())
    prices = Prices(json.loads(args.prices.read_text()))
    memory = lambda_settings(args.template)
    models = {**intake_model(prices, results, memory), **stack_model(prices, results, memory)}
    print(render(models, prices))
    print("\n" + "\n".join(gsi_table(results["capacity_units"])))
    meta = results["meta"]
    print(f"\nfrom {args.results} ({meta.get('note') or 'no note'}, taken {meta['taken_at']})")
    measured = results["capacity_units"].get("measured")
    if measured:
        print(
            f"DynamoDB units from a later capacity-only run: revision {measured['revision']},"
            f" taken {measured['taken_at']} ({measured['note']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

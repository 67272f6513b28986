"""A verdict per limit: "fits (peak X% of limit)" or "bottleneck at ~N devices", where N is
solved for (bisection over the fleet size, log scale) as the size whose peak meets the limit.
When the storm alone exceeds a limit, the verdict says so and solves the storm size instead."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from infra.scale.limits import Limit, Limits
from infra.scale.model import INTAKE, RESULTS, Inputs, Result, simulate
from infra.scale.scenario import Scenario

MAX_DEVICES = 10**10
STEPS = 40
POLICY_CONFLICT = Limit(
    key="policy_conflict",
    name="policy: P(a report's transaction conflicts on every one of its in-process attempts) "
    "<= 1% (issue 15: no healthy report dead-lettered)",
    value=0.01,
    unit="probability",
    adjustable=False,
    source="issue 15; the model's conflict formula (infra/scale/model.py)",
)


@dataclass(frozen=True)
class Check:
    metric: str  # a per-minute row key, or "total:<key>" for a count over the hour
    limit: Limit
    what: str


@dataclass(frozen=True)
class Verdict:
    check: Check
    peak: float
    share: float  # peak / limit
    fits: bool
    devices_at_limit: float | None  # fleet size whose peak meets the limit (None: none found)
    storm_at_limit: float | None  # storm size that meets it, when the storm alone exceeds it
    text: str


def template_limit(inputs: Inputs, function: str, queue: str) -> Limit:
    source = inputs.settings.source(function, queue)
    return Limit(
        key=f"{function}.MaximumConcurrency",
        name=f"template.yaml: {function} event source on {queue}, ScalingConfig."
        "MaximumConcurrency (parameter QueueConsumerMaxConcurrency)",
        value=float(source.max_concurrency or 0),
        unit="concurrent batches",
        adjustable=True,
        source="template.yaml",
    )


def checks(limits: Limits, inputs: Inputs) -> list[Check]:
    stream = Limit(
        key="stream_shards",
        name="tickets stream: shards x ParallelizationFactor (template: default 1; shards: "
        "assumption stream_shards_minimum, +1 per 1,000 WRU/s)",
        value=1.0,
        unit="share used",
        adjustable=True,
        source="template.yaml, limits.yaml assumptions",
    )
    return [
        Check("iot_in_per_s", limits["iot_inbound_publishes"], "IoT inbound publishes/s"),
        Check("iot_out_per_s", limits["iot_outbound_publishes"], "IoT outbound publishes/s"),
        Check("rule_evals_per_s", limits["iot_rule_evaluations"], "IoT rule evaluations/s"),
        Check("rule_actions_per_s", limits["iot_rule_actions"], "IoT rule actions/s"),
        Check("faultq_in_flight", limits["sqs_in_flight_standard"], "FaultQueue in flight"),
        Check("intake_conc", template_limit(inputs, INTAKE, "FaultQueue"), "FaultIntake conc."),
        Check(
            "diagresult_conc",
            template_limit(inputs, RESULTS, "DiagnosticsResultQueue"),
            "DiagnosticsResult conc.",
        ),
        Check("stream_use", stream, "tickets stream consumers (busiest)"),
        Check("lambda_conc_total", limits["lambda_account_concurrency"], "Lambda conc. total"),
        Check("stock_wcu", limits["dynamodb_partition_writes"], "stock shard key WCU/s"),
        Check("stock_rcu", limits["dynamodb_partition_reads"], "stock shard key RCU/s"),
        Check("open_gsi_wcu", limits["dynamodb_partition_writes"], "by_status 'open' WCU/s"),
        Check("diag_pending_wcu", limits["dynamodb_partition_writes"], "by_diag 'pending' WCU/s"),
        Check("bundle_wcu", limits["dynamodb_partition_writes"], "largest customer bundle WCU/s"),
        Check("ticket_key_wcu", limits["dynamodb_partition_writes"], "one ticket's keys WCU/s"),
        Check(
            "incident_counter_wcu",
            limits["dynamodb_partition_writes"],
            "incident statistics shard WCU/s",
        ),
        Check("counter_wcu", limits["dynamodb_partition_writes"], "storm counter shard WCU/s"),
        Check("counter_rcu", limits["dynamodb_partition_reads"], "storm counter shard RCU/s"),
        Check("counter_item_kb", limits["dynamodb_item_size"], "storm counter shard item KB"),
        Check("pointer_rcu", limits["dynamodb_partition_reads"], "ACTIVE pointer key RCU/s"),
        Check("tickets_table_wru", limits["dynamodb_table_writes"], "tickets table WRU/s"),
        Check("record_conflict_p", POLICY_CONFLICT, "P(every attempt conflicts), stock shard"),
        Check("email_per_s", limits["ses_send_rate"], "emails/s"),
        Check("total:email_messages", limits["ses_daily_quota"], "emails in the hour"),
        Check("sms_per_s", limits["sns_sms_rate"], "SMS/s"),
        Check("push_per_s", limits["sns_publish_rate"], "push publishes/s"),
    ]


def peak_of(result: Result, metric: str) -> float:
    if metric.startswith("total:"):
        return result.totals.get(metric.removeprefix("total:"), 0.0)
    return result.peak(metric)


def solve(peak: Callable[[float], float], limit: float, lo: float, hi: float) -> float | None:
    """The smallest x in [lo, hi] (log scale) where peak(x) reaches `limit`; None if it
    does not within the range. Assumes peak grows with x."""
    if peak(hi) < limit:
        return None
    if peak(lo) >= limit:
        return lo
    low, high = math.log(max(lo, 1.0)), math.log(hi)
    for _ in range(STEPS):
        mid = (low + high) / 2
        if peak(math.exp(mid)) >= limit:
            high = mid
        else:
            low = mid
    return math.exp(high)


class Solver:
    """Runs (and remembers) the simulation at other fleet and storm sizes."""

    def __init__(self, scenario: Scenario, inputs: Inputs) -> None:
        self.scenario = scenario
        self.inputs = inputs
        self._runs: dict[tuple[int, int], Result] = {}

    def run(self, devices: float, storm: float | None = None) -> Result:
        storm_devices = self.scenario.storm_devices if storm is None else round(storm)
        key = (round(devices), storm_devices)
        if key not in self._runs:
            varied = replace(self.scenario, devices=key[0], storm_devices=key[1])
            self._runs[key] = simulate(varied, self.inputs)
        return self._runs[key]

    def verdict(self, check: Check) -> Verdict:
        sc, limit = self.scenario, check.limit.value
        peak = peak_of(self.run(sc.devices), check.metric)
        share = peak / limit if limit else math.inf
        floor = max(1, sc.storm_devices)  # the storm's devices are part of the fleet

        def by_devices(n: float) -> float:
            return peak_of(self.run(n), check.metric)

        if peak <= limit:
            at = solve(by_devices, limit, max(floor, sc.devices), MAX_DEVICES)
            text = f"fits (peak {share:.1%} of limit)"
            text += f"; bottleneck at ~{_round(at)} devices" if at else "; still fits at 10^10"
            return Verdict(check, peak, share, True, at, None, text)
        if by_devices(floor) > limit and sc.storm_devices:
            storm = solve(
                lambda k: peak_of(self.run(floor, k), check.metric), limit, 1, sc.storm_devices
            )
            text = (
                f"bottleneck (peak {share:.0%} of limit): the storm alone exceeds it; "
                f"a storm of ~{_round(storm)} devices in {sc.storm_minutes} min fits"
            )
            return Verdict(check, peak, share, False, None, storm, text)
        at = solve(by_devices, limit, floor, sc.devices)
        text = f"bottleneck at ~{_round(at)} devices (peak {share:.0%} of limit)"
        return Verdict(check, peak, share, False, at, None, text)


def _round(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 1:
        return "0"
    digits = 2 - math.floor(math.log10(value)) - 1
    return f"{round(value, min(0, digits)):,.0f}"


def verdicts(scenario: Scenario, inputs: Inputs) -> list[Verdict]:
    solver = Solver(scenario, inputs)
    return [solver.verdict(check) for check in checks(inputs.limits, inputs)]

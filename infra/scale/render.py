"""The scale model's output: a compact per-minute table, a verdict per limit, the hour's cost,
and the same as one JSON document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from infra.scale.model import Result
from infra.scale.verdict import Verdict

# (row key, header, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("minute", "min", "{:>3.0f}"),
    ("faults_per_s", "fault/s", "{:>7.1f}"),
    ("iot_in_per_s", "IoT in/s", "{:>8.0f}"),
    ("rule_actions_per_s", "act/s", "{:>6.0f}"),
    ("faultq_backlog", "FQ wait", "{:>7.0f}"),
    ("faultq_in_flight", "FQ infl", "{:>7.0f}"),
    ("faultq_oldest_s", "FQ age", "{:>6.0f}"),
    ("diagq_backlog", "DQ wait", "{:>7.0f}"),
    ("intake_conc", "intake", "{:>6.1f}"),
    ("autodiagnose_conc", "autodg", "{:>6.1f}"),
    ("notifier_conc", "notify", "{:>6.1f}"),
    ("diagresult_conc", "diagrs", "{:>6.1f}"),
    ("lambda_conc_total", "λ sum", "{:>6.1f}"),
    ("stream_age_s", "strm age", "{:>8.0f}"),
    ("stock_key_wcu_per_min", "shardW/m", "{:>8.0f}"),
    ("conflict_p", "P(cnf)", "{:>6.2f}"),
    ("record_conflict_p", "P(fail)", "{:>7.1e}"),
    ("open_gsi_wcu", "openW", "{:>5.0f}"),
    ("counter_wcu", "ctrW", "{:>5.0f}"),
    ("counter_rcu", "ctrR", "{:>5.0f}"),
    ("counter_item_kb", "ctrKB", "{:>5.0f}"),
    ("email_per_s", "mail/s", "{:>6.1f}"),
    ("sms_per_s", "sms/s", "{:>5.1f}"),
    ("push_per_s", "push/s", "{:>6.1f}"),
    ("dead_lettered", "DLQ", "{:>5.0f}"),
)


def table(result: Result) -> str:
    header = " ".join(f"{name:>{len(fmt.format(0))}}" for _, name, fmt in COLUMNS)
    lines = [header]
    lines += [" ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) for row in result.rows]
    return "\n".join(lines)


def verdict_lines(verdicts: list[Verdict]) -> str:
    lines = []
    for v in verdicts:
        limit = v.check.limit
        lines.append(
            f"- {v.check.what}: peak {v.peak:,.2f} / {limit.value:,.6g} {limit.unit} -> {v.text}"
        )
        lines.append(f"    limit: {limit.name} <{limit.source}>")
        if limit.note:
            lines.append(f"    note: {limit.note}")
    return "\n".join(lines)


def cost_lines(cost: Mapping[str, float]) -> str:
    return "\n".join(f"- {item}: ${usd:,.2f}" for item, usd in cost.items())


def report(result: Result, verdicts: list[Verdict], cost: Mapping[str, float], header: str) -> str:
    sc = result.scenario
    detected = (
        f"; incident detected in minute {result.detected_minute}"
        if result.detected_minute is not None
        else ""
    )
    totals = ", ".join(f"{k} {v:,.0f}" for k, v in result.totals.items())
    return "\n".join(
        [
            header,
            f"design {sc.design}: {sc.devices:,} devices, {sc.fault_rate_per_device_day:g} faults "
            f"per device-day, storm of {sc.storm_devices:,} devices in {sc.storm_minutes} min "
            f"from minute {sc.storm_start_minute}, telemetry every {sc.telemetry_every_s:g} s"
            f"{detected}",
            "",
            table(result),
            "",
            f"hour totals: {totals}",
            "",
            "verdicts:",
            verdict_lines(verdicts),
            "",
            "cost of the hour (USD, make cost's per-event figures x the hour's counts):",
            cost_lines(cost),
        ]
    )


def as_json(
    result: Result, verdicts: list[Verdict], cost: Mapping[str, float], meta: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "meta": dict(meta),
        "scenario": asdict(result.scenario),
        "detected_minute": result.detected_minute,
        "minutes": result.rows,
        "totals": result.totals,
        "verdicts": [
            {
                "metric": v.check.metric,
                "what": v.check.what,
                "limit": asdict(v.check.limit),
                "peak": v.peak,
                "share_of_limit": v.share,
                "fits": v.fits,
                "devices_at_limit": v.devices_at_limit,
                "storm_devices_at_limit": v.storm_at_limit,
                "verdict": v.text,
            }
            for v in verdicts
        ],
        "cost_usd": dict(cost),
    }

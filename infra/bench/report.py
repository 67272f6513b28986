"""The benchmark's printed tables, from the results document (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.bench.stats import reference_phase

LATENCIES = (
    ("fault_to_puback", "fault->PUBACK"),
    ("fault_to_ticket", "fault->ticket"),
    ("fault_to_first_notification", "fault->notified"),
    ("diagnostics_round_trip", "diag round trip"),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _latency(figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return "-"
    missing = f" ({figures['missing']} missing)" if figures.get("missing") else ""
    return f"{_ms(figures.get('p50_s'))}/{_ms(figures.get('p99_s'))}{missing}"


def load_table(title: str, series: Mapping[str, Any]) -> list[str]:
    rate = series.get("saturation_rate")
    lines = [
        f"{title}: p50/p99 in ms (ceiling: moto's requests/s at 100 % busy); "
        "saturation (p99 fault->ticket < 2 s): "
        + (f"{rate:g} faults/s" if rate else "not reached")
        + ("" if series.get("search_complete") else " (search stopped by BENCH_SEARCH_S)"),
        "| faults/s | achieved | "
        + " | ".join(label for _, label in LATENCIES)
        + " | moto req/s | ceiling used | ceiling req/s |",
        "|---:|---:|---|---|---|---|---:|---:|---:|",
    ]
    for phase in series["phases"]:
        moto = phase["moto"]
        cells = [_latency(phase.get(key)) for key, _ in LATENCIES]
        lines.append(
            f"| {phase['rate']:g} | {phase['achieved_rate']:g} | "
            + " | ".join(cells)
            + f" | {moto['requests_per_s']:g} | {moto['busy_share']:.0%}"
            f" | {moto['ceiling_requests_per_s'] or '-'} |"
        )
    if series.get("skipped_rates"):
        skipped = ", ".join(f"{r:g}" for r in series["skipped_rates"])
        lines.append(f"not run (a lower rate lost most of its tickets): {skipped}")
    return lines


def requests_table(series: Mapping[str, Any]) -> list[str]:
    if not series["phases"]:
        return []
    phase = reference_phase(series)
    per_fault = phase["moto"]["requests_per_fault"]
    lines = [f"moto requests per fault at {phase['rate']:g} faults/s (idle pollers taken off):"]
    lines += [f"  {op:40} {n:6.2f}" for op, n in sorted(per_fault.items(), key=lambda i: -i[1])]
    cpu = phase.get("cpu_ms_per_fault")
    if cpu:
        lines.append(f"CPU ms per fault at {phase['rate']:g} faults/s, by process (idle included):")
        lines += [f"  {name:40} {ms:6.2f}" for name, ms in cpu.items() if ms >= 0.05]
    return lines


def capacity_table(capacity: Mapping[str, Any]) -> list[str]:
    lines = [
        "DynamoDB units per fault (computed from recorded requests): step / function: RRU WRU"
        " GSI-WRU"
    ]
    for step, functions in capacity.get("steps", {}).items():
        for function, units in functions.items():
            lines.append(
                f"  {step:11} {function:34} {units['read_units']:6.2f} {units['write_units']:6.2f}"
                f" {units.get('gsi_write_units', 0.0):6.2f}"
            )
    per = capacity.get("per_notification")
    if per:
        lines.append(
            f"  per notification (NotifierFunction): {per['read_units']:.2f} RRU, "
            f"{per['write_units']:.2f} WRU, {per.get('gsi_write_units', 0.0):.2f} GSI WRU"
        )
    return lines


def cold_start_table(cold: Mapping[str, Any]) -> list[str]:
    if "skipped" in cold:
        return [f"cold start: skipped ({cold['skipped']})"]
    lines = [
        f"cold start (import + init, median of {cold['runs']}), baseline boto3 + client "
        f"{cold['baseline_ms']:.0f} ms:"
    ]
    lines += [
        f"  {lid:34} {f['ms']:7.0f} ms  x{f['ratio']:.2f}" for lid, f in cold["functions"].items()
    ]
    whole = cold.get("whole_process")
    if whole:
        lines.append(
            f"whole process ({whole['clock']}), baseline boto3 + client "
            f"{whole['baseline_ms']:.0f} ms:"
        )
        lines += [
            f"  {lid:34} {f['ms']:7.0f} ms  x{f['ratio']:.2f}"
            for lid, f in whole["functions"].items()
        ]
    return lines


def _storm_path(threshold: int | None) -> str:
    """Which intake path the load took: runs before the setting existed crossed the policy's
    storm threshold (the load's few codes on one model), and so did `--incident-threshold 0`."""
    if not threshold:
        return "; storm path (incidents.yaml's threshold)"
    return f"; per-device path (incident threshold {threshold:,} devices)"


def render(results: Mapping[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"aftercare bench, {meta['taken_at']}, revision {meta.get('revision') or 'unknown'}, "
        f"{meta['seconds_per_rate']:g} s per rate"
        + (f" ({meta['note']})" if meta.get("note") else "")
        + _storm_path(meta.get("incident_threshold"))
    ]
    for key, title in (("full_stack", "whole stack"), ("fault_path_only", "fault path only")):
        if key in results:
            lines += ["", *load_table(title, results[key]), *requests_table(results[key])]
    if "capacity_units" in results:
        lines += ["", *capacity_table(results["capacity_units"])]
    if "cold_start" in results:
        lines += ["", *cold_start_table(results["cold_start"])]
    return "\n".join(lines)

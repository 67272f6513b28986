"""The measured per-fault figures the scale model runs on, from bench/results.json (the same
reference phases and capacity counts `make cost` prices): nothing here is guessed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.bench.stats import reference_phase

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results.json"
TICKETS_TABLE = "aftercare-tickets-local"
INCIDENTS_TABLE = "aftercare-incidents-local"
INTAKE = "FaultIntakeFunction"


@dataclass(frozen=True)
class Measured:
    """Per new fault (whole stack at its saturation rate) unless the name says otherwise."""

    busy_s_per_fault: dict[str, float]  # Lambda seconds per fault, per function
    ticket_table_wru_per_fault: float  # every function's writes to the tickets table
    # FaultIntake on the incidents table per new fault (no incident open): the storm counter's
    # UpdateItem (write units) and the code's ACTIVE pointer in intake's batch read (read units)
    storm_counter_wcu_per_fault: float
    incident_pointer_rru_per_fault: float
    taken_at: str
    note: str

    def busy(self, function: str) -> float:
        return self.busy_s_per_fault.get(function, 0.0)


def busy_seconds(functions: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Invocations per fault x mean duration: the Lambda time one fault costs each function
    (batching changes how it is split into invocations, not the total)."""
    return {
        name: f["invocations_per_fault"] * f["mean_duration_ms"] / 1000
        for name, f in functions.items()
    }


def tickets_table_writes(steps: Mapping[str, Any]) -> float:
    return sum(
        units.get("write_units_by_table", {}).get(TICKETS_TABLE, 0.0)
        for units in steps["new"].values()
    )


def incidents_table_units(steps: Mapping[str, Any]) -> tuple[float, float]:
    """(write units, read units) FaultIntake spends on the incidents table per new fault. A
    capacity run from before the storm counter has none: that is an error, not a zero."""
    intake = steps["new"].get(INTAKE, {})
    writes = intake.get("write_units_by_table", {}).get(INCIDENTS_TABLE)
    reads = intake.get("read_units_by_table", {}).get(INCIDENTS_TABLE, 0.0)
    if writes is None:
        raise ValueError(
            f"bench/results.json: no {INTAKE} writes to {INCIDENTS_TABLE} in the capacity "
            "step 'new' (taken before the storm counter?): run `make bench`"
        )
    return float(writes), float(reads)


def measured_from(results: Mapping[str, Any]) -> Measured:
    phase = reference_phase(results["full_stack"])
    busy = busy_seconds(phase["functions"])
    steps = results["capacity_units"]["steps"]
    counter_wcu, pointer_rru = incidents_table_units(steps)
    return Measured(
        busy_s_per_fault=busy,
        ticket_table_wru_per_fault=tickets_table_writes(steps),
        storm_counter_wcu_per_fault=counter_wcu,
        incident_pointer_rru_per_fault=pointer_rru,
        taken_at=str(results["meta"]["taken_at"]),
        note=str(results["meta"].get("note") or ""),
    )


def load_results(path: Path = RESULTS) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `make bench` first")
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return results

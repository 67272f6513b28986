"""CPU per fault by process, from two /proc snapshots (infra.bench.cpu)."""

from __future__ import annotations

import os

from infra.bench.cpu import cpu_seconds, per_fault_ms, snapshot


def test_cpu_per_fault_by_process_costliest_first_with_a_total() -> None:
    # Given two snapshots around 100 faults, one process restarted in between
    before = {"moto": 10.0, "FaultIntakeFunction": 2.0, "iot-rules": 5.0}
    after = {"moto": 10.5, "FaultIntakeFunction": 2.3, "iot-rules": 0.1}
    # When the CPU per fault is computed
    figures = per_fault_ms(before, after, faults=100)
    # Then each running process's milliseconds per fault come costliest first, the restarted
    # one (its counter started again) is left out, and the total adds up the rest
    assert list(figures) == ["moto", "FaultIntakeFunction", "total"]
    assert figures["moto"] == 5.0 and figures["FaultIntakeFunction"] == 3.0
    assert figures["total"] == 8.0


def test_snapshot_reads_running_processes_and_skips_gone_ones() -> None:
    taken = snapshot({"me": os.getpid(), "gone": 2**22 + 12345})
    assert set(taken) == {"me"} and 0 < taken["me"] <= (cpu_seconds(os.getpid()) or 0)

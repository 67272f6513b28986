"""CPU time the stack's processes use, from /proc: where a fault's CPU goes, per process.

On a machine with two cores and other work on it, latency figures move with the machine's load;
CPU seconds per fault by process do not (much), and they say which process to make cheaper.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process that is still running."""
    taken = {name: cpu_seconds(pid) for name, pid in pids.items()}
    return {name: seconds for name, seconds in taken.items() if seconds is not None}


def per_fault_ms(
    before: Mapping[str, float], after: Mapping[str, float], faults: int
) -> dict[str, float]:
    """Milliseconds of CPU per fault by process between two snapshots (a restarted process,
    whose counter started again, is left out), costliest first, with their `total`."""
    used = {
        name: after[name] - before[name]
        for name in after
        if name in before and after[name] >= before[name]
    }
    figures = {
        name: round(1000 * seconds / max(faults, 1), 2)
        for name, seconds in sorted(used.items(), key=lambda item: -item[1])
        if seconds > 0
    }
    figures["total"] = round(sum(1000 * s for s in used.values()) / max(faults, 1), 2)
    return figures

"""Latency summaries and the saturation point (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

SATURATION_P99_S: Final = 2.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) by the nearest-rank method; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Iterable[float], expected: int | None = None) -> dict[str, Any]:
    """{n, p50_s, p99_s, max_s} of latencies in seconds, plus `missing` when `expected` is given
    (a fault that never got its ticket is not a fast fault: it counts as missing, not dropped)."""
    samples = [float(v) for v in values]
    result: dict[str, Any] = {
        "n": len(samples),
        "p50_s": _rounded(percentile(samples, 50)),
        "p99_s": _rounded(percentile(samples, 99)),
        "max_s": _rounded(max(samples) if samples else None),
    }
    if expected is not None:
        result["missing"] = max(0, expected - len(samples))
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def latencies(started: Mapping[Any, float], finished: Mapping[Any, float]) -> list[float]:
    """finished - started for every key both know."""
    return [finished[key] - at for key, at in started.items() if key in finished]


def sustained(phase: Mapping[str, Any], limit_s: float = SATURATION_P99_S) -> bool:
    """A rate is sustained when every fault got its ticket, the publisher kept the rate, and the
    fault -> ticket p99 is under the limit."""
    ticket = phase["fault_to_ticket"]
    p99 = ticket.get("p99_s")
    return (
        ticket.get("n", 0) > 0
        and ticket.get("missing", 0) == 0
        and p99 is not None
        and p99 < limit_s
        and not _fell_behind(phase)
    )


def overloaded(phases: Sequence[Mapping[str, Any]]) -> bool:
    """The last phase lost more than half of its tickets (within its drain time)."""
    if not phases:
        return False
    ticket = phases[-1]["fault_to_ticket"]
    return 2 * ticket.get("missing", 0) > ticket.get("n", 0) + ticket.get("missing", 0)


def saturation_point(
    phases: Sequence[Mapping[str, Any]], limit_s: float = SATURATION_P99_S
) -> float | None:
    """The highest sustained rate below which no rate lost a ticket or fell behind (None if
    none). Lower rates may miss the p99 limit: the fault queue's batching window makes a slow
    trickle wait longer than a stream, so latency is not monotonic in the rate; a lost ticket
    is, and a rate "passing" above one that lost tickets is luck, not capacity."""
    best = None
    for phase in sorted(phases, key=lambda p: p["rate"]):
        if sustained(phase, limit_s):
            best = phase["rate"]
        elif phase["fault_to_ticket"].get("missing", 0) or _fell_behind(phase):
            break
    return best


def _fell_behind(phase: Mapping[str, Any]) -> bool:
    return bool(phase.get("achieved_rate", 0.0) < 0.9 * phase["rate"])


def next_probe(low: float, high: float | None, ceiling: float) -> float | None:
    """Bisection step of the saturation search: `low` is sustained, `high` is not (None when
    nothing failed yet: double, up to `ceiling`). None when the bracket is within 10 %."""
    if high is None:
        probe = min(low * 2, ceiling)
        return probe if probe > low else None
    if high - low <= 0.1 * high:
        return None
    return round((low + high) / 2, 1)


def reference_phase(series: Mapping[str, Any]) -> Mapping[str, Any]:
    """The phase the per-fault figures come from: the saturation rate's (batches are fullest at
    the highest rate the stack sustains), else the lowest rate's."""
    phases = sorted(series["phases"], key=lambda p: p["rate"])
    wanted = series.get("saturation_rate")
    return next((p for p in phases if p["rate"] == wanted), phases[0])

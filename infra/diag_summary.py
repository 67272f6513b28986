"""Remote diagnostics figures for the demo summary, from the stack's own TicketsTable."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aftercare.adapters.diagnostics import DynamoDiagnosticsStore
from aftercare.models.diagnostics import DiagnosticRecord, DiagnosticState, Outcome

from infra.target import Target


def percentile(values: Sequence[int], share: float) -> int | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summarise_records(records: Sequence[DiagnosticRecord]) -> dict[str, Any]:
    latencies = [r.latency_ms for r in records if r.latency_ms is not None]
    outcomes = Counter(r.outcome.value for r in records if r.outcome is not None)
    return {
        "diagnostics_requested": len(records),
        "diagnostics_by_status": dict(sorted(Counter(r.status.value for r in records).items())),
        "diagnostics_by_outcome": dict(sorted(outcomes.items())),
        "diagnostics_automatic": sum(1 for r in records if r.purpose.value == "auto"),
        "remote_fixes": outcomes.get(Outcome.REMOTE_FIX.value, 0),
        "diagnostics_timed_out": sum(1 for r in records if r.status is DiagnosticState.TIMED_OUT),
        "diagnostics_latency_p50_ms": percentile(latencies, 0.50),
        "diagnostics_latency_p99_ms": percentile(latencies, 0.99),
    }


def diagnostics_summary(target: Target) -> dict[str, Any]:
    """Counts by status and outcome, remote fixes, timeouts, p50/p99 request->result latency."""
    store = DynamoDiagnosticsStore(
        tickets_table=target.resource("TicketsTable"), ddb=target.client("dynamodb")
    )
    return summarise_records(store.all_records())

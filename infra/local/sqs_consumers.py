"""How many batches of each SQS event source the local stack processes at once.

Lambda runs up to ``ScalingConfig.MaximumConcurrency`` batches of an SQS event source at the same
time. A local worker is one instance (one invocation at a time: Powertools metrics are
per-process state, so handlers cannot share a process), so the stack runs a function's SQS
sources in K processes: its worker, plus K - 1 SQS-only workers (no stream or schedule sources,
no checkpoints) named ``<LogicalId>-sqs<N>``. K is the source's MaximumConcurrency capped by a
local limit (`SqsConcurrency`, ``aftercare local up --sqs-concurrency``), so a small machine is
not asked for the template's ten. Concurrent consumers are safe as on AWS: a received message is
invisible to the others while its lease lasts (see `infra.local.sqs_source`), and the domain
is idempotent for redeliveries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# FaultIntake carries the fault path's load; on two cores three consumers keep the serial moto
# server busy without starving it. The other queues see a trickle: one consumer each.
DEFAULT_FUNCTION_LIMITS: Final = {"FaultIntakeFunction": 3}


@dataclass(frozen=True)
class SqsConcurrency:
    """The local limit on concurrent batches per SQS-sourced function (template logical id)."""

    default: int = 1
    by_function: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_FUNCTION_LIMITS))

    def __post_init__(self) -> None:
        limits = [self.default, *self.by_function.values()]
        if any(limit < 1 for limit in limits):
            raise ValueError(f"SQS concurrency must be at least 1, got {limits}")

    def limit(self, logical_id: str) -> int:
        return self.by_function.get(logical_id, self.default)


def consumers(sources: list[Mapping[str, Any]], limit: int) -> int:
    """How many processes poll a function's SQS sources: 1 without any."""
    if not sources:
        return 1
    wanted = [source.get("maximum_concurrency") or limit for source in sources]
    return max(1, min(limit, max(wanted)))


def sqs_only_specs(
    logical_id: str, spec: Mapping[str, Any], limit: int
) -> dict[str, dict[str, Any]]:
    """The extra SQS-only workers' specs by child name (none when one consumer is enough).

    Extra worker N polls only the sources whose MaximumConcurrency allows an N-th batch.
    """
    sources = list(spec.get("sqs_sources") or [])
    extras: dict[str, dict[str, Any]] = {}
    for number in range(2, consumers(sources, limit) + 1):
        polled = [s for s in sources if (s.get("maximum_concurrency") or limit) >= number]
        extras[f"{logical_id}-sqs{number}"] = {
            **spec,
            "sqs_sources": polled,
            "stream_sources": [],
            "schedule_sources": [],
            "checkpoint_dir": None,
            "invoke_port": 0,
        }
    return extras

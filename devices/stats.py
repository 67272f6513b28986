"""The device agent's counters."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class AgentStats:
    """Counters since the agent was created."""

    faults_raised: int = 0
    delivered: int = 0
    rejected: int = 0
    publish_errors: int = 0
    connects: int = 0


class StatsCounter:
    """Thread-safe increments of `AgentStats`; readers get an immutable snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = AgentStats()

    def count(self, **increments: int) -> None:
        with self._lock:
            updated = {name: getattr(self._stats, name) + n for name, n in increments.items()}
            self._stats = replace(self._stats, **updated)

    @property
    def snapshot(self) -> AgentStats:
        with self._lock:
            return self._stats

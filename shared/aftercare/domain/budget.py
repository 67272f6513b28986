"""A run's time budget: whether there is still time to start one more piece of work.

A scheduled sweep works through a backlog one item at a time; it must stop taking new items
while it can still finish the one in hand (before Lambda's timeout, and before the leases it
took run out and another sweep may take the same items).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

Clock = Callable[[], float]


@dataclass(frozen=True)
class Budget:
    """No new work once `clock()` reaches `deadline` (seconds on the clock's own scale)."""

    deadline: float
    clock: Clock = field(default=time.monotonic, compare=False)

    @classmethod
    def unlimited(cls, clock: Clock = time.monotonic) -> Budget:
        return cls(deadline=float("inf"), clock=clock)

    @classmethod
    def from_remaining(
        cls, remaining: timedelta, *, margin: timedelta, clock: Clock = time.monotonic
    ) -> Budget:
        """`remaining` time to run (Lambda: get_remaining_time_in_millis), of which `margin` is
        kept for finishing the item in hand and reporting."""
        return cls(deadline=clock() + (remaining - margin).total_seconds(), clock=clock)

    def within(self, span: timedelta) -> Budget:
        """This budget, but over no later than `span` from now."""
        return Budget(
            deadline=min(self.deadline, self.clock() + span.total_seconds()), clock=self.clock
        )

    def has_time(self) -> bool:
        return self.clock() < self.deadline

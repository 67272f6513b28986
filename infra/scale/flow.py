"""Fluid queues, minute by minute: what arrives, what the consumers' concurrency can process,
what waits, and (for an SQS queue with a redrive policy) what comes back after the visibility
timeout and what is dead-lettered after `maxReceiveCount` receives."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

MINUTE_S = 60


def capacity_per_minute(concurrency: float, busy_s_per_item: float) -> float:
    """Items `concurrency` invocations finish in a minute (Little's law); unbounded when the
    item costs no measured Lambda time."""
    if busy_s_per_item <= 0:
        return math.inf
    return concurrency * MINUTE_S / busy_s_per_item


@dataclass
class Cohort:
    """Messages first sent in the same minute, received the same number of times."""

    first_minute: int
    receives: int
    count: float
    hot: bool  # writes the contended item (the storm's stock item)


@dataclass(frozen=True)
class QueueMinute:
    received: float  # new messages + redeliveries that became visible this minute
    processed: float
    processed_hot: float
    succeeded: float
    succeeded_hot: float
    failed: float
    dead_lettered: float
    backlog: float  # visible, waiting for a consumer
    in_flight: float  # received and not deleted: being processed or waiting out the timeout
    oldest_age_s: float


@dataclass
class RetryQueue:
    """A standard queue read by a Lambda event source; failed records return after the
    visibility timeout and go to the dead-letter queue on their `max_receive_count`-th receive."""

    visibility_timeout_s: int
    max_receive_count: int
    visible: list[Cohort] = field(default_factory=list)
    waiting: dict[int, list[Cohort]] = field(default_factory=dict)

    def step(
        self,
        minute: int,
        arrivals: list[Cohort],
        capacity: float,
        hot_failure: Callable[[float], float],
        processing_in_flight: Callable[[float], float],
    ) -> QueueMinute:
        """`hot_failure(hot records processed per second)` is the share of hot records that
        fail; `processing_in_flight(records per second)` what the running batches hold."""
        incoming = self.waiting.pop(minute, []) + [c for c in arrivals if c.count > 0]
        received = sum(c.count for c in incoming)
        self.visible += incoming
        self.visible.sort(key=lambda c: c.first_minute)
        taken = self._take(capacity)
        processed = sum(c.count for c in taken)
        hot = sum(c.count for c in taken if c.hot)
        share = hot_failure(hot / MINUTE_S) if hot else 0.0
        failed = dead = 0.0
        back = minute + max(1, math.ceil(self.visibility_timeout_s / MINUTE_S))
        for cohort in taken:
            if not cohort.hot or share <= 0:
                continue
            lost = cohort.count * share
            failed += lost
            if cohort.receives + 1 >= self.max_receive_count:
                dead += lost
            else:
                retry = Cohort(cohort.first_minute, cohort.receives + 1, lost, True)
                self.waiting.setdefault(back, []).append(retry)
        return QueueMinute(
            received=received,
            processed=processed,
            processed_hot=hot,
            succeeded=processed - failed,
            succeeded_hot=hot - failed,
            failed=failed,
            dead_lettered=dead,
            backlog=sum(c.count for c in self.visible),
            in_flight=processing_in_flight(processed / MINUTE_S) + self._waiting_count(),
            oldest_age_s=self._oldest_age(minute),
        )

    def _take(self, capacity: float) -> list[Cohort]:
        taken: list[Cohort] = []
        left = capacity
        while self.visible and left > 0:
            head = self.visible[0]
            portion = min(head.count, left)
            taken.append(Cohort(head.first_minute, head.receives, portion, head.hot))
            left -= portion
            head.count -= portion
            if head.count <= 1e-9:
                self.visible.pop(0)
        return taken

    def _waiting_count(self) -> float:
        return sum(c.count for cohorts in self.waiting.values() for c in cohorts)

    def _oldest_age(self, minute: int) -> float:
        """Age of the oldest message not yet deleted (visible or waiting to be redelivered),
        measured to the end of `minute`."""
        firsts = [c.first_minute for c in self.visible] + [
            c.first_minute for cohorts in self.waiting.values() for c in cohorts
        ]
        return (minute + 1 - min(firsts)) * MINUTE_S if firsts else 0.0


@dataclass
class Stage:
    """A consumer with a throughput ceiling (a stream read by `shards` batches at a time, a
    paced sender): what it cannot take this minute waits for the next."""

    backlog: float = 0.0

    def step(self, arrivals: float, capacity: float) -> tuple[float, float]:
        """(processed, seconds the oldest waiting item has waited, approximately: the backlog
        over the drain rate)."""
        available = self.backlog + arrivals
        processed = min(available, capacity)
        self.backlog = available - processed
        age = self.backlog / (capacity / MINUTE_S) if self.backlog > 0 and capacity > 0 else 0.0
        return processed, age

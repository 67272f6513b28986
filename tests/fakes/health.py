"""An in-memory `HealthStore` that counts its writes and can lose a race on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aftercare.domain.health import DeviceHealth
from aftercare.domain.ports.health import DeviceView, HealthConflict


@dataclass
class Device:
    model: str
    customer_id: str


class FakeHealthStore:
    def __init__(self, devices: dict[str, Device]) -> None:
        self.devices = devices
        self.health: dict[str, DeviceHealth] = {}
        self.writes = 0
        self.reads = 0
        self.conflicts_left = 0  # the next saves that lose to a concurrent writer

    def read(self, things: Sequence[str]) -> dict[str, DeviceView]:
        self.reads += 1
        return {
            t: DeviceView(
                thing=t,
                model=self.devices[t].model,
                customer_id=self.devices[t].customer_id,
                health=self.health.get(t),
            )
            for t in things
            if t in self.devices
        }

    def save(self, health: DeviceHealth, *, previous: datetime | None) -> None:
        current = self.health.get(health.thing)
        watermark = current.last_sent_at if current else None
        if self.conflicts_left or watermark != previous:
            self.conflicts_left = max(0, self.conflicts_left - 1)
            raise HealthConflict(health.thing)
        self.writes += 1
        self.health[health.thing] = health

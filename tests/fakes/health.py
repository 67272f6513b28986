"""An in-memory `HealthStore` that counts its writes and can lose a race on purpose."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aftercare.domain.health import DeviceHealth
from aftercare.domain.ports.health import DeviceView, HealthConflict
from aftercare.models.payloads import FaultEnvelope, FaultReport
from aftercare.models.tickets import TicketSummary


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


class FakeDesk:
    """A `MaintenanceDesk` that keeps what it was asked, and absorbs repeats like the real
    notifier (its (id, kind) marker) and intake (a ticket id fixed by the fault id) do."""

    def __init__(self) -> None:
        self.advice: dict[str, TicketSummary] = {}
        self.tickets: dict[tuple[str, str], FaultReport] = {}
        self.calls = 0

    def advise(self, facts: TicketSummary, now: datetime) -> str:
        self.calls += 1
        if facts.ticket_id in self.advice:
            return "duplicate"
        self.advice[facts.ticket_id] = facts
        return "sent"

    def open_preventive(self, envelope: FaultEnvelope) -> str:
        self.calls += 1
        report = FaultReport.model_validate_json(base64.b64decode(envelope.payload_b64))
        key = (envelope.thing, report.fault_id)
        if key in self.tickets:
            return "duplicate"
        self.tickets[key] = report
        return "opened"

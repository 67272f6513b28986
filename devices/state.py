"""The simulated device's view of itself: active faults, latest readings and a log ring buffer.

Diagnostics routines read it and ``reset_component`` may clear a fault in it. Everything here is
deterministic given the calls made, so tests can assert on routine results.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime

from aftercare.models.payloads import FaultReport, ReadingValue, Severity

LOG_CAPACITY = 200
SEEN_FAULT_IDS = 4096
CANCELLED_REQUESTS = 1024
BASE_COMPONENTS = ("mainboard", "network", "psu", "storage", "thermal")


def component_of(code: str) -> str:
    """The component a fault code belongs to: its prefix, e.g. ``PSU-OVERVOLT`` -> ``psu``."""
    return code.split("-", 1)[0].split("_", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault the device currently has."""

    fault_id: str
    code: str
    severity: Severity | None
    occurred_at: datetime
    remote_fixable: bool

    @property
    def component(self) -> str:
        return component_of(self.code)


@dataclass
class DeviceState:
    """Simulated device state; guard compound reads and writes with ``lock``."""

    thing: str
    firmware: str
    model: str | None = None
    readings: dict[str, ReadingValue] = field(default_factory=dict)
    remote_fixable_codes: frozenset[str] = frozenset()
    active_faults: dict[str, ActiveFault] = field(default_factory=dict)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_CAPACITY))
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)
    _cancelled: OrderedDict[str, datetime] = field(default_factory=OrderedDict, repr=False)

    def record_fault(self, report: FaultReport) -> None:
        """Take a raised fault into the state: it becomes active and its readings current."""
        with self.lock:
            self.readings.update(report.readings)
            self.active_faults[report.code] = ActiveFault(
                fault_id=report.fault_id,
                code=report.code,
                severity=report.severity,
                occurred_at=report.occurred_at,
                remote_fixable=report.code in self.remote_fixable_codes,
            )
            self._remember(report.fault_id)
            severity = report.severity.value if report.severity else "default"
            self.note(report.occurred_at, f"FAULT {report.code} {severity} id={report.fault_id}")

    def has_seen(self, fault_id: str) -> bool:
        with self.lock:
            return fault_id in self._seen

    def faults(self) -> list[ActiveFault]:
        """Active faults ordered by code."""
        with self.lock:
            return [self.active_faults[code] for code in sorted(self.active_faults)]

    def clear(self, codes: list[str]) -> None:
        with self.lock:
            for code in codes:
                self.active_faults.pop(code, None)

    def components(self) -> list[str]:
        with self.lock:
            return sorted(set(BASE_COMPONENTS) | {f.component for f in self.active_faults.values()})

    def note(self, at: datetime, text: str) -> None:
        with self.lock:
            self.log.append(f"{at.isoformat()} {text}")

    def cancel_request(self, request_id: str, until: datetime) -> None:
        """Remember a cancelled diagnostics request until it would have expired anyway."""
        with self.lock:
            self._cancelled[request_id] = until
            self._cancelled.move_to_end(request_id)
            if len(self._cancelled) > CANCELLED_REQUESTS:
                self._cancelled.popitem(last=False)

    def is_cancelled(self, request_id: str, now: datetime) -> bool:
        with self.lock:
            for stale in [r for r, until in self._cancelled.items() if until <= now]:
                del self._cancelled[stale]
            return request_id in self._cancelled

    def _remember(self, fault_id: str) -> None:
        self._seen[fault_id] = None
        if len(self._seen) > SEEN_FAULT_IDS:
            self._seen.popitem(last=False)

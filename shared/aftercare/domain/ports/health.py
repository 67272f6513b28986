"""Where device health items are kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aftercare.domain.health import DeviceHealth


class HealthConflict(Exception):
    """Another writer moved the device's watermark since it was read: read again and refold."""


@dataclass(frozen=True)
class DeviceView:
    """What telemetry intake needs about one registered device: who owns it, and its health."""

    thing: str
    model: str | None
    customer_id: str | None
    health: DeviceHealth | None
    region: str | None = None


class HealthStore(Protocol):
    """Device registry reads and health writes for the telemetry path."""

    def read(self, things: Sequence[str]) -> dict[str, DeviceView]:
        """The registered devices among `things` (absent: not registered), with their health."""
        ...

    def save(self, health: DeviceHealth, *, previous: datetime | None) -> None:
        """Write the health item if its watermark is still `previous` (None: no item yet),
        else raise `HealthConflict`."""
        ...


class HealthReader(Protocol):
    """The health items of some devices (the owner's view reads them, one batch)."""

    def healths(self, things: Sequence[str]) -> dict[str, DeviceHealth]:
        """The health of each of `things` that has reported telemetry (absent: never)."""
        ...

"""A device's recent telemetry for a chart (the console's device page): what the health fold
keeps, namely the daily mean temperatures of the last `history_days` days (maintenance.yaml)
and the latest report's values. Per-report readings are not stored (the fold writes one item
per device per batch), so the series is daily.

Staff see any device; a customer only a device they own now (anything else reads as not
found, like every other device route)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from aftercare.domain.access import Caller
from aftercare.domain.health import DeviceHealth
from aftercare.domain.ownership import OwnedDeviceNotFound
from aftercare.domain.ports.health import HealthReader

MAX_DAYS = 31


class InvalidRange(ValueError):
    """`to` before `from`."""


class Registry(Protocol):
    def device(self, thing: str) -> dict[str, Any] | None: ...


class DailyReading(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    day: date
    temp_c_mean: float
    reports: int = Field(description="the temperature readings the mean is of")


class LatestReadings(BaseModel):
    """The newest applied report's values (absent: the device does not report it)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    sent_at: datetime
    received_at: datetime
    firmware: str
    uptime_s: int
    temp_c: float | None = None
    temp_ewma: float | None = None
    fan_hours: float | None = None
    filter_life_pct: float | None = None
    charge_cycles: int | None = None
    error_counters: dict[str, int] = Field(default_factory=dict)


class DeviceTelemetry(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    model: str | None = None
    reports: int = Field(description="reports applied since the device first reported")
    offline_since: datetime | None = None
    latest: LatestReadings | None = Field(description="null: the device never reported")
    daily: list[DailyReading] = Field(
        default_factory=list, description="oldest first, within from/to, the newest `limit`"
    )


def device_telemetry(
    registry: Registry,
    health: HealthReader,
    caller: Caller,
    thing: str,
    *,
    first: date | None = None,
    last: date | None = None,
    limit: int = MAX_DAYS,
) -> DeviceTelemetry:
    caller.require_reader()
    if first is not None and last is not None and last < first:
        raise InvalidRange(f"to ({last}) is before from ({first})")
    device = registry.device(thing)
    if device is None or not caller.may_see(device.get("customer_id")):
        raise OwnedDeviceNotFound(thing)
    found = health.healths([thing]).get(thing)
    if found is None:
        return DeviceTelemetry(thing=thing, model=device.get("model"), reports=0, latest=None)
    days = [
        DailyReading(day=day, temp_c_mean=round(mean, 3), reports=found.daily_temp[d].count)
        for d in sorted(found.daily_temp)
        for day, mean in [(date.fromisoformat(d), found.daily_temp[d].mean)]
        if (first is None or day >= first) and (last is None or day <= last)
    ]
    return DeviceTelemetry(
        thing=thing,
        model=found.model or device.get("model"),
        reports=found.reports,
        offline_since=found.offline_since,
        latest=_latest(found),
        daily=days[-limit:],
    )


def _latest(health: DeviceHealth) -> LatestReadings:
    return LatestReadings(
        sent_at=health.last_sent_at,
        received_at=health.last_seen,
        firmware=health.firmware,
        uptime_s=health.uptime_s,
        temp_c=health.temp_c,
        temp_ewma=health.temp_ewma,
        fan_hours=health.fan_hours,
        filter_life_pct=health.filter_life_pct,
        charge_cycles=health.charge_cycles,
        error_counters=health.error_counters,
    )

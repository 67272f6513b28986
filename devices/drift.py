"""How a simulated device ages: the counters and readings its telemetry carries on a given day.

Pure functions of (model, a per-device seed, the day, whether the device degrades), so a seed
reproduces a run. Every device's filter wears and its fan runs; a *degrading* device's filter
wears about three times as fast and its temperature climbs by ~0.8 °C a day, which is what the
maintenance rules (``shared/aftercare/data/maintenance.yaml``) are there to notice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from aftercare.models.telemetry import TelemetryMeasures

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class ModelProfile:
    """A product model's normal operating point and wear per day."""

    temp_c: float
    fan_hours_per_day: float | None = None
    filter_wear_pct_per_day: float | None = None
    charge_cycles_per_day: float | None = None


PROFILES: dict[str, ModelProfile] = {
    "AC-HP": ModelProfile(temp_c=38.0, fan_hours_per_day=14.0, filter_wear_pct_per_day=1.2),
    "RT-X": ModelProfile(temp_c=46.0, fan_hours_per_day=24.0),
    "EV-CH": ModelProfile(temp_c=34.0, charge_cycles_per_day=1.3),
    "IC-300": ModelProfile(temp_c=41.0, fan_hours_per_day=24.0),
}
DEFAULT_PROFILE = ModelProfile(temp_c=40.0)
DEGRADING_WEAR_FACTOR = 3.0
DEGRADING_TEMP_RISE_PER_DAY = 0.8


@dataclass(frozen=True)
class DeviceAge:
    """Where one device starts: its counters on day 0, and whether it degrades."""

    fan_hours: float
    filter_life_pct: float
    charge_cycles: int
    degrading: bool

    @classmethod
    def draw(cls, rng: random.Random, *, degrading: bool) -> DeviceAge:
        return cls(
            fan_hours=round(rng.uniform(500.0, 30_000.0), 1),
            # today's filter life: a degrading device's is already nearly used up
            filter_life_pct=round(
                rng.uniform(6.0, 14.0) if degrading else rng.uniform(25.0, 100.0), 1
            ),
            charge_cycles=rng.randint(0, 3_000),
            degrading=degrading,
        )


def measures_on(model: str, age: DeviceAge, day: float, noise: random.Random) -> TelemetryMeasures:
    """The device's telemetry measures ``day`` days after day 0 (negative: in the past)."""
    profile = PROFILES.get(model, DEFAULT_PROFILE)
    wear = DEGRADING_WEAR_FACTOR if age.degrading else 1.0
    rise = DEGRADING_TEMP_RISE_PER_DAY * day if age.degrading else 0.0
    fan_hours = filter_pct = cycles = None
    if profile.fan_hours_per_day is not None:
        fan_hours = round(max(0.0, age.fan_hours + profile.fan_hours_per_day * day), 1)
    if profile.filter_wear_pct_per_day is not None:
        worn = age.filter_life_pct - profile.filter_wear_pct_per_day * wear * day
        filter_pct = round(min(100.0, max(0.0, worn)), 1)
    if profile.charge_cycles_per_day is not None:
        cycles = max(0, int(age.charge_cycles + profile.charge_cycles_per_day * day))
    errors = {"sensor_retries": noise.randint(0, 2 + (5 if age.degrading else 0))}
    return TelemetryMeasures(
        temp_c=round(profile.temp_c + rise + noise.gauss(0.0, 0.4), 1),
        fan_hours=fan_hours,
        filter_life_pct=filter_pct,
        charge_cycles=cycles,
        error_counters=errors,
    )

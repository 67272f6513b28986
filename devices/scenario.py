"""Fleet scenarios and their plans: what a simulated fleet does, and when.

``plan()`` turns devices + scenario into a time-ordered list of events (random faults, storms,
offline episodes, at-least-once duplicates); it is a pure function of its inputs, so a seed
reproduces a run. Fault ids are NOT derived from the seed (the agent makes them when the fault
is raised): a replayed scenario must not look like a redelivery of the previous run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

import yaml
from aftercare.models.ids import FaultCode, ThingName
from aftercare.models.telemetry import TelemetryMeasures
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    StringConstraints,
    ValidationError,
    model_validator,
)

from devices.drift import SECONDS_PER_DAY, DeviceAge, measures_on

Share = Annotated[float, Field(gt=0, le=1)]
DUPLICATE_DELAY_S = (0.2, 3.0)
STORM_SPREAD_S = 0.5

# (keywords in the fault code, reading, low, high): readings that make a fault plausible.
_READING_RULES: tuple[tuple[tuple[str, ...], str, float, float], ...] = (
    (("OVERVOLT", "SURGE"), "voltage_v", 252.0, 275.0),
    (("UNDERVOLT", "BROWNOUT", "SAG"), "voltage_v", 170.0, 205.0),
    (("OVERHEAT", "TEMP", "THERM"), "temperature_c", 82.0, 110.0),
    (("FAN",), "fan_rpm", 0.0, 600.0),
    (("BATT",), "battery_pct", 1.0, 15.0),
    (("LINK", "WIFI", "NET", "WAN"), "rssi_dbm", -95.0, -80.0),
)


class FleetConfigError(ValueError):
    """The devices, scenario and fault codes do not fit together."""


class Storm(BaseModel):
    """One fault code raised by a share of the devices (whose model has it) at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: FaultCode
    at_s: NonNegativeFloat
    device_share: Share


class OfflineEpisode(BaseModel):
    """A share of the devices lose the network for ``duration_s`` and raise faults meanwhile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: NonNegativeFloat
    duration_s: PositiveFloat
    device_share: Share = 0.1
    faults_per_device: NonNegativeInt = 1


class Scenario(BaseModel):
    """What the fleet does. ``fault_rate`` is faults per device per minute (Poisson);
    ``code_weights`` maps model -> code -> weight (codes a model's weights leave out are not
    raised; models without weights draw uniformly); ``duplicate_rate`` is the probability that a
    fault is published a second time, byte for byte, like a broker redelivery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: PositiveFloat = 60.0
    fault_rate: NonNegativeFloat = 1.0
    code_weights: dict[str, dict[FaultCode, NonNegativeFloat]] = Field(default_factory=dict)
    duplicate_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    storms: list[Storm] = Field(default_factory=list)
    offline: list[OfflineEpisode] = Field(default_factory=list)
    seed: int = 0
    firmware: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "1.0.0"
    connect_timeout_s: PositiveFloat = 30.0
    # Telemetry (off by default): a report per device every `telemetry_every_s` (0: none), the
    # last `telemetry_history_days` days uploaded at the start (one report a day, backdated, as a
    # device that buffered them would), and the share of devices that degrade (see devices.drift)
    telemetry_every_s: NonNegativeFloat = 0.0
    telemetry_history_days: Annotated[int, Field(ge=0, le=29)] = 0
    degrading_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    drain_timeout_s: PositiveFloat = 30.0

    @model_validator(mode="after")
    def _events_inside_run(self) -> Self:
        late = [s.at_s for s in self.storms if s.at_s >= self.duration_s]
        late += [o.at_s for o in self.offline if o.at_s >= self.duration_s]
        if late:
            raise ValueError(f"events at {late} s start at or after duration_s={self.duration_s}")
        return self


class DeviceSpec(BaseModel):
    """One simulated device: its IoT thing name and product model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thing: ThingName
    model: Annotated[str, StringConstraints(min_length=1)]


def load_scenario(path: Path) -> Scenario:
    """Read a scenario from YAML; errors name the file."""
    try:
        data = yaml.safe_load(path.read_text())
        return Scenario.model_validate(data or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise FleetConfigError(f"invalid scenario {path}: {exc}") from exc


def make_devices(count: int, models: Sequence[str], prefix: str = "sim") -> list[DeviceSpec]:
    """``count`` devices named ``{prefix}-0001``..., models assigned round-robin."""
    if count < 1 or not models:
        raise FleetConfigError("a fleet needs at least one device and one model")
    width = max(4, len(str(count)))
    return [
        DeviceSpec(thing=f"{prefix}-{i + 1:0{width}d}", model=models[i % len(models)])
        for i in range(count)
    ]


def plausible_readings(code: str, rng: random.Random) -> dict[str, float]:
    """Normal mains voltage and temperature, bent towards what the fault code suggests."""
    readings = {
        "voltage_v": round(rng.gauss(230.0, 2.0), 1),
        "temperature_c": round(rng.gauss(41.0, 3.0), 1),
    }
    for keywords, name, low, high in _READING_RULES:
        if any(keyword in code for keyword in keywords):
            readings[name] = round(rng.uniform(low, high), 1)
    return readings


class EventKind(StrEnum):
    FAULT = "fault"
    DUPLICATE = "duplicate"
    OFFLINE_START = "offline_start"
    OFFLINE_END = "offline_end"
    TELEMETRY = "telemetry"


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """One step of a run; ``ref`` is the ``seq`` of the fault a duplicate repeats."""

    at_s: float
    seq: int
    kind: EventKind
    device: int
    code: str | None = None
    readings: Mapping[str, float] = field(default_factory=dict)
    storm: bool = False
    offline: bool = False
    ref: int | None = None
    telemetry: TelemetryMeasures | None = None
    age_s: float = 0.0  # a telemetry report's sent_at is this long before it is published


def validate_fleet(
    devices: Sequence[DeviceSpec], scenario: Scenario, codes_by_model: Mapping[str, Sequence[str]]
) -> None:
    """Fail fast, naming the problem, when devices, scenario and catalog codes disagree."""
    if not devices:
        raise FleetConfigError("the fleet has no devices")
    things = [d.thing for d in devices]
    if len(set(things)) != len(things):
        raise FleetConfigError("thing names must be unique within a fleet")
    unknown = sorted({d.model for d in devices if not codes_by_model.get(d.model)})
    if unknown:
        raise FleetConfigError(f"no fault codes for model(s): {', '.join(unknown)}")
    for model, weights in scenario.code_weights.items():
        stray = sorted(set(weights) - set(codes_by_model.get(model, ())))
        if stray or not any(weights.values()):
            raise FleetConfigError(f"code_weights for {model}: unknown codes {stray} or all zero")
    models = {d.model for d in devices}
    for storm in scenario.storms:
        if not any(storm.code in codes_by_model[m] for m in models):
            raise FleetConfigError(f"storm code {storm.code} belongs to no model in the fleet")


class _Planner:
    """Builds the event list; every random draw comes from one seeded generator."""

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        scenario: Scenario,
        codes_by_model: Mapping[str, Sequence[str]],
    ) -> None:
        self.devices = devices
        self.scenario = scenario
        self.codes_by_model = codes_by_model
        self.rng = random.Random(scenario.seed)
        self.events: list[PlannedEvent] = []
        self.windows: dict[int, list[tuple[float, float]]] = {}

    def build(self) -> list[PlannedEvent]:
        for episode in self.scenario.offline:
            self.plan_offline(episode)
        for device in range(len(self.devices)):
            self.plan_random_faults(device)
        for storm in self.scenario.storms:
            self.plan_storm(storm)
        self.plan_duplicates()
        self.plan_telemetry()
        return sorted(self.events, key=lambda e: (e.at_s, e.seq))

    def plan_offline(self, episode: OfflineEpisode) -> None:
        end = min(episode.at_s + episode.duration_s, self.scenario.duration_s)
        free = [d for d in range(len(self.devices)) if not self.overlaps(d, episode.at_s, end)]
        for device in self.sample(free, episode.device_share):
            self.windows.setdefault(device, []).append((episode.at_s, end))
            self.add(episode.at_s, EventKind.OFFLINE_START, device)
            for _ in range(episode.faults_per_device):
                self.add_fault(self.rng.uniform(episode.at_s, end), device)
            self.add(end, EventKind.OFFLINE_END, device)

    def plan_random_faults(self, device: int) -> None:
        rate_per_s = self.scenario.fault_rate / 60.0
        if rate_per_s <= 0:
            return
        at = self.rng.expovariate(rate_per_s)
        while at < self.scenario.duration_s:
            self.add_fault(at, device)
            at += self.rng.expovariate(rate_per_s)

    def plan_storm(self, storm: Storm) -> None:
        eligible = [
            d
            for d, spec in enumerate(self.devices)
            if storm.code in self.codes_by_model[spec.model]
        ]
        for device in self.sample(eligible, storm.device_share):
            at = min(storm.at_s + self.rng.uniform(0, STORM_SPREAD_S), self.scenario.duration_s)
            self.add_fault(at, device, code=storm.code, storm=True)

    def plan_duplicates(self) -> None:
        faults = sorted(
            (e for e in self.events if e.kind is EventKind.FAULT and not e.offline),
            key=lambda e: (e.at_s, e.seq),
        )
        for fault in faults:
            if self.rng.random() >= self.scenario.duplicate_rate:
                continue
            at = fault.at_s + self.rng.uniform(*DUPLICATE_DELAY_S)
            if at < self.scenario.duration_s and not self.is_offline(fault.device, at):
                self.add(at, EventKind.DUPLICATE, fault.device, ref=fault.seq)

    def plan_telemetry(self) -> None:
        # A generator of its own: turning telemetry on leaves the fault plan of a seed as it was.
        every, history = self.scenario.telemetry_every_s, self.scenario.telemetry_history_days
        if every <= 0 and history == 0:
            return
        rng = random.Random(f"telemetry-{self.scenario.seed}")
        degrading = set(
            self.sample_with(rng, range(len(self.devices)), self.scenario.degrading_share)
        )
        for device, spec in enumerate(self.devices):
            age = DeviceAge.draw(rng, degrading=device in degrading)
            for days_ago in range(history, 0, -1):  # oldest first: seq order is sent_at order
                measures = measures_on(spec.model, age, -days_ago, rng)
                self.add(
                    0.0,
                    EventKind.TELEMETRY,
                    device,
                    telemetry=measures,
                    age_s=days_ago * SECONDS_PER_DAY,
                )
            at = rng.uniform(0.0, every) if every > 0 else self.scenario.duration_s
            while at < self.scenario.duration_s:
                if not self.is_offline(device, at):
                    measures = measures_on(spec.model, age, at / SECONDS_PER_DAY, rng)
                    self.add(at, EventKind.TELEMETRY, device, telemetry=measures)
                at += every

    def add_fault(
        self, at: float, device: int, code: str | None = None, storm: bool = False
    ) -> None:
        chosen = code or self.pick_code(device)
        self.add(
            at,
            EventKind.FAULT,
            device,
            code=chosen,
            readings=plausible_readings(chosen, self.rng),
            storm=storm,
            offline=self.is_offline(device, at),
        )

    def add(
        self,
        at: float,
        kind: EventKind,
        device: int,
        *,
        code: str | None = None,
        readings: Mapping[str, float] | None = None,
        storm: bool = False,
        offline: bool = False,
        ref: int | None = None,
        telemetry: TelemetryMeasures | None = None,
        age_s: float = 0.0,
    ) -> None:
        self.events.append(
            PlannedEvent(
                at_s=at,
                seq=len(self.events),
                kind=kind,
                device=device,
                code=code,
                readings=readings or {},
                storm=storm,
                offline=offline,
                ref=ref,
                telemetry=telemetry,
                age_s=age_s,
            )
        )

    def pick_code(self, device: int) -> str:
        model = self.devices[device].model
        codes = list(self.codes_by_model[model])
        weights = self.scenario.code_weights.get(model)
        if weights is None:
            return self.rng.choice(codes)
        return self.rng.choices(codes, weights=[weights.get(c, 0.0) for c in codes])[0]

    def sample(self, candidates: list[int], share: float) -> list[int]:
        return self.sample_with(self.rng, candidates, share)

    @staticmethod
    def sample_with(rng: random.Random, candidates: Sequence[int], share: float) -> list[int]:
        if not candidates or share <= 0:
            return []
        count = max(1, round(share * len(candidates)))
        return sorted(rng.sample(list(candidates), count))

    def overlaps(self, device: int, start: float, end: float) -> bool:
        return any(s < end and start < e for s, e in self.windows.get(device, []))

    def is_offline(self, device: int, at: float) -> bool:
        return any(s <= at <= e for s, e in self.windows.get(device, []))


def plan(
    devices: Sequence[DeviceSpec], scenario: Scenario, codes_by_model: Mapping[str, Sequence[str]]
) -> list[PlannedEvent]:
    """The run's events in time order; the same inputs always give the same plan."""
    validate_fleet(devices, scenario, codes_by_model)
    return _Planner(devices, scenario, codes_by_model).build()

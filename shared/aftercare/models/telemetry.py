"""Telemetry on the wire: what a device reports about its health, periodically.

Published on ``dt/aftercare/{thing}/telemetry`` (QoS 0 or 1); see ../../README.md ("The device
contract"). Like every inbound payload it forbids unknown fields; every measure is optional
because models measure different things (an EV charger has charge cycles, not a filter).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from aftercare.models.ids import FaultCode, ThingName
from aftercare.models.payloads import (
    MAX_READINGS,
    FaultEnvelope,
    ReadingName,
    ReadingValue,
    Rfc3339,
)

MAX_TELEMETRY_PAYLOAD_BYTES = 8 * 1024
MAX_ERROR_COUNTERS = 32
MAX_ACTIVE_FAULTS = 32

Finite = Annotated[float, Field(allow_inf_nan=False)]
ErrorCounterName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


def _bounded_counters(value: dict[str, int]) -> dict[str, int]:
    if len(value) > MAX_ERROR_COUNTERS:
        raise ValueError(f"at most {MAX_ERROR_COUNTERS} error counters, got {len(value)}")
    return value


def _bounded_readings(value: dict[str, ReadingValue]) -> dict[str, ReadingValue]:
    if len(value) > MAX_READINGS:
        raise ValueError(f"at most {MAX_READINGS} readings are allowed, got {len(value)}")
    return value


class TelemetryMeasures(BaseModel):
    """The model-specific counters and readings of one report (each optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    temp_c: Annotated[Finite, Field(ge=-60, le=200)] | None = None
    fan_hours: Annotated[Finite, Field(ge=0, le=1_000_000)] | None = None
    filter_life_pct: Annotated[Finite, Field(ge=0, le=100)] | None = None
    charge_cycles: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    error_counters: Annotated[
        dict[ErrorCounterName, Annotated[int, Field(ge=0)]], AfterValidator(_bounded_counters)
    ] = Field(default_factory=dict)


class TelemetryReport(TelemetryMeasures):
    """A device's periodic health report on ``dt/aftercare/{thing}/telemetry``.

    ``sent_at`` orders a device's reports: the cloud applies a report only if it is newer than
    the last one it applied, so a redelivered or reordered message changes nothing.
    """

    firmware: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    uptime_s: Annotated[int, Field(ge=0)]
    sent_at: Rfc3339
    thing: ThingName | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    readings: Annotated[dict[ReadingName, ReadingValue], AfterValidator(_bounded_readings)] = Field(
        default_factory=dict
    )
    active_faults: Annotated[list[FaultCode], Field(max_length=MAX_ACTIVE_FAULTS)] = Field(
        default_factory=list
    )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class TelemetryEnvelope(FaultEnvelope):
    """What the telemetry topic rule delivers to the telemetry queue.

    Same shape as `FaultEnvelope`, from ``... FROM 'dt/aftercare/+/telemetry'``: the thing comes
    from the topic and the `TelemetryReport` stays opaque until validated.
    """

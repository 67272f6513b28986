"""What the scale model simulates: the fleet, its faults, the storm, and (for the fleet-incident
design) the policy numbers that design would run with. Every default is stated here."""

from __future__ import annotations

from dataclasses import dataclass, field

from infra.scale.counter import StormCounter

DAY_S = 86_400
TODAY = "today"
INCIDENT = "incident"
DESIGNS = (TODAY, INCIDENT)


@dataclass(frozen=True)
class IncidentPolicy:
    """The fleet-incident design of issue 15 as numbers (a design, not yet built: policy data
    the model runs on so the difference to today's design is a figure)."""

    # A storm is detected once this many devices reported the same code (model, firmware)
    # within the window; the incident is open from the next minute.
    detect_devices: int = 100
    # Share of an open incident's children sent an auto-diagnostic, and the most per incident.
    diagnostic_sample: float = 0.02
    diagnostic_cap: int = 200
    # Parts: every stock write goes through the stock item's SQS FIFO message group (one
    # writer per key: no transaction conflicts, in this design always, incident or not); while
    # an incident is open, holds only while the warehouse has units, and the backorders beyond
    # them are one aggregated counter update per minute.
    stock_units: int = 500
    # Customers: one known-issue message per affected customer (no per-ticket "opened"
    # message), paced to this many messages per second across channels, or slower where a
    # channel's quota (limits.yaml) would not take its share.
    known_issue_per_s: float = 50.0
    # Share of a channel's quota the paced messages may take (the rest: other faults' messages).
    quota_headroom: float = 0.9


@dataclass(frozen=True)
class Scenario:
    devices: int
    minutes: int = 60
    fault_rate_per_device_day: float = 0.001  # baseline: one fault per device every ~2.7 years
    storm_devices: int = 50_000
    storm_minutes: int = 10
    storm_start_minute: int = 5
    # The device contract names no telemetry interval (the agent's default is none): stated.
    telemetry_every_s: float = 300.0
    # Each customer's first working channel, share of customers (stated; not measured).
    channel_mix: dict[str, float] = field(
        default_factory=lambda: {"email": 0.6, "push": 0.3, "sms": 0.1}
    )
    # Share of the storm's devices owned by its largest customer (a B2B fleet): that
    # customer's digest item takes this share of the storm's notification writes.
    largest_customer_share: float = 0.01
    # Warehouses the storm's devices are served from (routing by region): 1 is the worst case,
    # a regional product line.
    storm_warehouses: int = 1
    # Stock shard items per (SKU, warehouse) of the storm's part (parts.yaml `stock_shards`;
    # the CLI defaults to the largest count there).
    stock_shards: int = 1
    # The windowed storm counter as built (incidents.yaml; the CLI reads the shipped file).
    counter: StormCounter = field(default_factory=StormCounter)
    design: str = TODAY
    policy: IncidentPolicy = field(default_factory=IncidentPolicy)

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {self.design!r}")
        if abs(sum(self.channel_mix.values()) - 1) > 1e-9:
            raise ValueError(f"channel shares must add up to 1: {self.channel_mix}")

    @property
    def baseline_faults_per_s(self) -> float:
        return self.devices * self.fault_rate_per_device_day / DAY_S

    @property
    def telemetry_per_s(self) -> float:
        return self.devices / self.telemetry_every_s if self.telemetry_every_s > 0 else 0.0

    def storm_reports(self, minute: int) -> float:
        """Storm reports arriving in `minute` (spread evenly over the storm's minutes)."""
        start = self.storm_start_minute
        if start <= minute < start + self.storm_minutes:
            return self.storm_devices / self.storm_minutes
        return 0.0

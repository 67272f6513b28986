"""A device's health: the compact state its telemetry folds into, one item per device.

A batch of telemetry is collapsed per device (`fold`): the reports are applied in `sent_at`
order and only those newer than the last one applied, so a redelivered batch, a duplicate
report or a late one changes nothing. What is kept is small and bounded: the latest counters,
an exponentially weighted moving average of the temperature, and the daily mean temperature of
the last `history_days` days (what the trend rule reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from aftercare.models.telemetry import TelemetryReport


class DailyTemp(BaseModel):
    """The running sum and count of one day's temperature readings."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    total: float
    count: int

    @property
    def mean(self) -> float:
        return self.total / self.count


class DeviceHealth(BaseModel):
    """The folded state of one device's telemetry (the health item)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    thing: str
    model: str | None = None
    customer_id: str | None = None
    firmware: str
    uptime_s: int
    first_seen: datetime
    last_seen: datetime  # when the newest applied report was received
    last_sent_at: datetime  # the newest applied report's own time: the idempotency watermark
    reports: int = 0
    temp_c: float | None = None
    temp_ewma: float | None = None
    daily_temp: dict[str, DailyTemp] = Field(default_factory=dict)  # ISO day -> sum/count
    fan_hours: float | None = None
    filter_life_pct: float | None = None
    charge_cycles: int | None = None
    error_counters: dict[str, int] = Field(default_factory=dict)
    next_check_at: datetime | None = None  # when silence becomes an offline check
    offline_since: datetime | None = None
    advised: dict[str, str] = Field(default_factory=dict)  # rule id -> the period it last fired
    advised_at: dict[str, datetime] = Field(default_factory=dict)  # rule id -> when it last fired

    def daily_means(self) -> list[tuple[date, float]]:
        return sorted((date.fromisoformat(d), t.mean) for d, t in self.daily_temp.items())


@dataclass(frozen=True)
class Received:
    """One accepted report, when IoT Core received it, and its queue message."""

    report: TelemetryReport
    received_at: datetime
    message_id: str


@dataclass(frozen=True)
class FoldPolicy:
    ewma_alpha: float
    history_days: int
    heartbeat: timedelta  # the device's model's: silence longer than this is a check


@dataclass(frozen=True)
class Folded:
    health: DeviceHealth | None  # None: nothing was applied (and nothing is written)
    applied: int
    skipped: int  # not newer than the watermark: redelivered, duplicated or late


def fold(
    previous: DeviceHealth | None,
    received: Iterable[Received],
    *,
    thing: str,
    model: str | None,
    customer_id: str | None,
    policy: FoldPolicy,
) -> Folded:
    """Apply a batch's reports of one device to its health, newest watermark wins."""
    ordered = sorted(received, key=lambda r: r.report.sent_at)
    health, applied, skipped = previous, 0, 0
    for item in ordered:
        if health is not None and item.report.sent_at <= health.last_sent_at:
            skipped += 1
            continue
        health = _apply(health, item, thing=thing, policy=policy)
        applied += 1
    if health is None or applied == 0:
        return Folded(health=None, applied=0, skipped=skipped)
    health = health.model_copy(
        update={
            "model": model or health.model,
            "customer_id": customer_id,
            "next_check_at": next_check(health.last_seen, policy.heartbeat),
            "offline_since": None,
        }
    )
    return Folded(health=health, applied=applied, skipped=skipped)


def next_check(last_seen: datetime, heartbeat: timedelta) -> datetime:
    """When silence becomes a check: last seen + heartbeat, rounded up to a grid of half a
    heartbeat. The rounding is for the sparse index: DynamoDB writes an index entry only when
    its key changes, so a device reporting every 5 minutes with a 30-minute heartbeat moves
    its entry on every third write, not every write (a check is at most half a heartbeat late).
    """
    grid = max(1, int((heartbeat / 2).total_seconds()))
    due = int((last_seen + heartbeat).timestamp())
    return datetime.fromtimestamp(-(-due // grid) * grid, tz=UTC)


def _apply(
    health: DeviceHealth | None, item: Received, *, thing: str, policy: FoldPolicy
) -> DeviceHealth:
    report = item.report
    base = health or DeviceHealth(
        thing=thing,
        firmware=report.firmware,
        uptime_s=report.uptime_s,
        first_seen=item.received_at,
        last_seen=item.received_at,
        last_sent_at=report.sent_at,
    )
    update: dict[str, object] = {
        "firmware": report.firmware,
        "uptime_s": report.uptime_s,
        "last_seen": max(base.last_seen, item.received_at),
        "last_sent_at": report.sent_at,
        "reports": base.reports + 1,
    }
    latest = {
        "fan_hours": report.fan_hours,
        "filter_life_pct": report.filter_life_pct,
        "charge_cycles": report.charge_cycles,
    }
    update.update({k: v for k, v in latest.items() if v is not None})
    if report.error_counters:
        update["error_counters"] = dict(report.error_counters)
    if report.temp_c is not None:
        update.update(_temperature(base, report.temp_c, report.sent_at.date(), policy))
    return base.model_copy(update=update)


def _temperature(
    base: DeviceHealth, temp_c: float, day: date, policy: FoldPolicy
) -> dict[str, object]:
    ewma = (
        temp_c
        if base.temp_ewma is None
        else policy.ewma_alpha * temp_c + (1 - policy.ewma_alpha) * base.temp_ewma
    )
    days = dict(base.daily_temp)
    key = day.isoformat()
    today = days.get(key, DailyTemp(total=0.0, count=0))
    days[key] = DailyTemp(total=today.total + temp_c, count=today.count + 1)
    newest = max(date.fromisoformat(d) for d in days)
    oldest_kept = newest - timedelta(days=policy.history_days - 1)
    kept = {d: t for d, t in days.items() if date.fromisoformat(d) >= oldest_kept}
    return {"temp_c": temp_c, "temp_ewma": round(ewma, 3), "daily_temp": kept}


def trend_per_day(points: Sequence[tuple[date, float]]) -> float | None:
    """The least-squares slope (°C per day) of daily means; None for fewer than two days."""
    if len(points) < 2:
        return None
    xs = [(d - points[0][0]).days for d, _ in points]
    ys = [v for _, v in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread

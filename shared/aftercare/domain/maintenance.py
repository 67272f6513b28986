"""Maintenance rules as data (``shared/aftercare/data/maintenance.yaml``) and what they say
about one device's health: which advice or preventive ticket is due, keyed per period so a
device gets at most one per rule per period however often it reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aftercare.data import DATA_FOLDER, load
from aftercare.domain.health import DeviceHealth, FoldPolicy, trend_per_day

EPOCH = date(1970, 1, 1)


class Action(StrEnum):
    ADVISE = "advise"
    TICKET = "ticket"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
    action: Action
    period_days: Annotated[int, Field(ge=1, le=365)]
    part: str | None = None  # advice: the part to suggest, priced from parts.yaml
    code: str | None = None  # ticket: the catalog code of the preventive ticket
    # advice: the message's line, string.Template with $finding, $part, $part_name_en,
    # $part_name_zh, $price, $currency
    title_en: str | None = None
    title_zh: str | None = None


class FilterLifeBelow(_Rule):
    kind: Literal["filter_life_below"]
    threshold_pct: Annotated[float, Field(gt=0, le=100)]

    def finding(self, health: DeviceHealth) -> str | None:
        life = health.filter_life_pct
        if life is None or life >= self.threshold_pct:
            return None
        return f"filter life {life:g} % (below {self.threshold_pct:g} %)"


class FanHoursOver(_Rule):
    kind: Literal["fan_hours_over"]
    rated_hours: Annotated[float, Field(gt=0)]

    def finding(self, health: DeviceHealth) -> str | None:
        hours = health.fan_hours
        if hours is None or hours <= self.rated_hours:
            return None
        return f"fan at {hours:g} h (rated {self.rated_hours:g} h)"


class TempTrendUp(_Rule):
    kind: Literal["temp_trend_up"]
    slope_c_per_day: Annotated[float, Field(gt=0)]
    min_days: Annotated[int, Field(ge=2)]

    def finding(self, health: DeviceHealth) -> str | None:
        points = health.daily_means()
        slope = trend_per_day(points) if len(points) >= self.min_days else None
        if slope is None or slope < self.slope_c_per_day:
            return None
        return (
            f"temperature rising {slope:.2f} °C/day over {len(points)} days "
            f"(threshold {self.slope_c_per_day:g})"
        )


Rule = Annotated[FilterLifeBelow | FanHoursOver | TempTrendUp, Field(discriminator="kind")]


class ModelRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    heartbeat_minutes: Annotated[int, Field(ge=1)]
    rules: list[Rule] = Field(default_factory=list)


class PartPrice(BaseModel):
    """A part as advice quotes it (from parts.yaml)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    sku: str
    name_en: str
    name_zh: str
    unit_price: float
    currency: str


class OfflineCheck(BaseModel):
    """The "device offline" message (string.Template with $last_seen)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    title_en: str
    title_zh: str


class MaintenanceRules(BaseModel):
    """Every model's heartbeat and rules, how health is folded, and the parts' prices."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    version: str
    parts: dict[str, PartPrice] = Field(default_factory=dict)
    ewma_alpha: Annotated[float, Field(gt=0, le=1)]
    history_days: Annotated[int, Field(ge=2, le=31)]
    default_heartbeat_minutes: Annotated[int, Field(ge=1)]
    offline: OfflineCheck
    models: dict[str, ModelRules]
    # Not in maintenance.yaml: a deployment's cap on every heartbeat (`with_heartbeat_cap`), so
    # a test stack sees silence in seconds; None keeps the models' own.
    heartbeat_cap: timedelta | None = None

    def heartbeat(self, model: str | None) -> timedelta:
        rules = self.models.get(model or "")
        minutes = rules.heartbeat_minutes if rules else self.default_heartbeat_minutes
        own = timedelta(minutes=minutes)
        return min(own, self.heartbeat_cap) if self.heartbeat_cap else own

    def with_heartbeat_cap(self, seconds: int) -> MaintenanceRules:
        """The rules with every heartbeat at most `seconds` (0: the models' own)."""
        cap = timedelta(seconds=seconds) if seconds > 0 else None
        return self.model_copy(update={"heartbeat_cap": cap})

    def fold_policy(self, model: str | None) -> FoldPolicy:
        return FoldPolicy(
            ewma_alpha=self.ewma_alpha,
            history_days=self.history_days,
            heartbeat=self.heartbeat(model),
        )

    def rule(self, model: str | None, rule_id: str) -> Rule:
        return next(r for r in self.rules_for(model) if r.id == rule_id)

    def part(self, sku: str) -> PartPrice | None:
        return self.parts.get(sku)

    def rules_for(self, model: str | None) -> list[Rule]:
        rules = self.models.get(model or "")
        return list(rules.rules) if rules else []


@dataclass(frozen=True)
class Due:
    """One rule that fired for one device in one period."""

    thing: str
    rule_id: str
    action: Action
    period: str  # e.g. "2026-12-01/30d": the period's first day and length
    finding: str
    part: str | None
    code: str | None

    @property
    def key(self) -> str:
        """Unique per device, rule and period: the at-most-once marker's identity."""
        return f"{self.rule_id}_{self.period_start}"

    @property
    def period_start(self) -> str:
        return self.period.split("/", 1)[0].replace("-", "")


def title_values(finding: str, part: PartPrice | None) -> dict[str, str]:
    """What an advice's title template may name."""
    values = {"finding": finding}
    if part is not None:
        values |= {
            "part": part.sku,
            "part_name_en": part.name_en,
            "part_name_zh": part.name_zh,
            "price": f"{part.unit_price:.2f}",
            "currency": part.currency,
        }
    return values


def period_of(day: date, period_days: int) -> str:
    """The period (fixed windows from 1970-01-01) that contains `day`."""
    start = EPOCH + timedelta(days=((day - EPOCH).days // period_days) * period_days)
    return f"{start.isoformat()}/{period_days}d"


def due_for(health: DeviceHealth, rules: MaintenanceRules, now: datetime) -> list[Due]:
    """The rules that fire on this health now, each with the period it falls in."""
    due = []
    for rule in rules.rules_for(health.model):
        finding = rule.finding(health)
        if finding is None:
            continue
        due.append(
            Due(
                thing=health.thing,
                rule_id=rule.id,
                action=rule.action,
                period=period_of(now.date(), rule.period_days),
                finding=finding,
                part=rule.part,
                code=rule.code,
            )
        )
    return due


def parse_rules(data: dict[str, Any], parts: dict[str, Any]) -> MaintenanceRules:
    """The rules, with the price of every part they name (a rule naming an unknown part, or
    a ticket rule without a code, is an error when the data is loaded, not when it fires)."""
    currency = str(parts["currency"])
    prices = {
        sku: PartPrice(sku=sku, currency=currency, **{k: p[k] for k in PART_FIELDS})
        for sku, p in parts["parts"].items()
    }
    rules = MaintenanceRules.model_validate(
        {**data, "version": str(data["version"]), "parts": prices}
    )
    for model, model_rules in rules.models.items():
        for rule in model_rules.rules:
            if rule.part is not None and rule.part not in prices:
                raise ValueError(f"maintenance rule {model}/{rule.id}: unknown part {rule.part}")
            if rule.action is Action.TICKET and rule.code is None:
                raise ValueError(f"maintenance rule {model}/{rule.id}: a ticket needs a code")
    return rules


PART_FIELDS = ("name_en", "name_zh", "unit_price")


@cache
def load_maintenance_rules() -> MaintenanceRules:
    """The maintenance rules shipped with this build (shared layer data)."""
    folder = DATA_FOLDER
    return parse_rules(load(folder, "maintenance.yaml"), load(folder, "parts.yaml"))

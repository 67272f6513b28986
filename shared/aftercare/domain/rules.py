"""Rules as code: the fault catalog and the service policy, loaded from versioned YAML data."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from aftercare.data import DATA_FOLDER, load
from aftercare.models.severity import Severity


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PartLine(_Rule):
    sku: str
    qty: PositiveInt = 1


class CatalogEntry(_Rule):
    code: str
    title_en: str
    title_zh: str
    category: str
    severity: Severity
    models: tuple[str, ...]
    parts: tuple[PartLine, ...] = ()
    routine: str
    remote_fixable: bool
    auto_diagnose: bool
    # The fault always needs an engineer on site: the ticket is dispatchable from the start.
    always_onsite: bool = False
    # Opened by the maintenance rules from telemetry, never reported by a device.
    preventive: bool = False


class FaultCatalog(_Rule):
    version: str
    codes: dict[str, CatalogEntry]

    def lookup(self, code: str) -> CatalogEntry | None:
        return self.codes.get(code)

    def codes_for_model(self, model: str) -> list[str]:
        """The codes a device of `model` may report (preventive codes are the cloud's)."""
        return sorted(
            code
            for code, entry in self.codes.items()
            if model in entry.models and not entry.preventive
        )


class Threshold(_Rule):
    priority: str
    min_points: int


class PriorityRules(_Rule):
    severity_points: dict[Severity, int]
    tier_points: dict[str, int]
    warranty_points: dict[str, int]
    thresholds: tuple[Threshold, ...]


class SlaTarget(_Rule):
    response_h: Annotated[float, Field(gt=0)]
    resolution_h: Annotated[float, Field(gt=0)]

    @property
    def response(self) -> timedelta:
        return timedelta(hours=self.response_h)

    @property
    def resolution(self) -> timedelta:
        return timedelta(hours=self.resolution_h)


class ServicePolicy(_Rule):
    version: str
    priority: PriorityRules
    sla: dict[str, dict[str, SlaTarget]]
    unclassified_severity: Severity
    max_report_age_days: PositiveInt
    max_clock_skew_minutes: PositiveInt
    dedup_retention_days: PositiveInt

    def priority_for(self, severity: Severity, tier: str, in_warranty: bool) -> str:
        rules = self.priority
        points = (
            rules.severity_points[severity]
            + rules.tier_points.get(tier, 0)
            + rules.warranty_points["in_warranty" if in_warranty else "out_of_warranty"]
        )
        for threshold in sorted(rules.thresholds, key=lambda t: -t.min_points):
            if points >= threshold.min_points:
                return threshold.priority
        return rules.thresholds[-1].priority

    def sla_for(self, priority: str, tier: str) -> SlaTarget:
        by_tier = self.sla[priority]
        return by_tier.get(tier, by_tier["standard"])


def _load_yaml(name: str) -> Any:
    return load(DATA_FOLDER, name)


def parse_catalog(data: dict[str, Any]) -> FaultCatalog:
    codes = {code: CatalogEntry(code=code, **entry) for code, entry in data["codes"].items()}
    return FaultCatalog(version=str(data["version"]), codes=codes)


@cache
def load_catalog() -> FaultCatalog:
    """The fault catalog shipped with this build (shared layer data)."""
    return parse_catalog(_load_yaml("catalog.yaml"))


@cache
def load_policy() -> ServicePolicy:
    """The service policy shipped with this build (shared layer data)."""
    data = _load_yaml("policy.yaml")
    data["version"] = str(data["version"])
    return ServicePolicy.model_validate(data)

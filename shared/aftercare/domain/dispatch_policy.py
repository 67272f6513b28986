"""The dispatch policy as data (`shared/aftercare/data/dispatch.yaml`): visit lengths, skill
levels, travel model, partner preference, who is booked automatically and the score's weights.

Each score term is documented beside its weight in the YAML and in `aftercare.domain.dispatch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from aftercare.data import DATA_FOLDER, load
from aftercare.models.field import GeoPoint


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class VisitRules(_Rule):
    duration_min: dict[str, PositiveInt]
    slot_step_min: PositiveInt
    horizon_days: PositiveInt

    def duration(self, category: str) -> timedelta:
        minutes = self.duration_min.get(category, self.duration_min["default"])
        return timedelta(minutes=minutes)

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.slot_step_min)


class SkillRules(_Rule):
    level: dict[str, Annotated[int, Field(ge=1, le=3)]]

    def needed(self, priority: str) -> int:
        return self.level.get(priority, self.level["default"])


class TravelRules(_Rule):
    speed_kmh: Annotated[float, Field(gt=0)]
    detour_factor: Annotated[float, Field(ge=1)]
    max_km: Annotated[float, Field(gt=0)]
    region_centres: dict[str, GeoPoint]


class PartnerRules(_Rule):
    first_in_regions: list[str] = Field(default_factory=list)


class AutoBookRules(_Rule):
    priorities: list[str] = Field(default_factory=list)
    tiers: list[str] = Field(default_factory=list)
    escalated: bool = False  # a ticket SLA escalation sent back to dispatch (partners allowed)

    def applies(self, priority: str, tier: str, *, escalated: bool = False) -> bool:
        return priority in self.priorities or tier in self.tiers or (self.escalated and escalated)


class ScoreWeights(_Rule):
    sla_used: float
    travel_km: float
    load: float
    first_time_fix: float
    ftf_prior_rate: Annotated[float, Field(ge=0, le=1)]
    ftf_prior_visits: Annotated[float, Field(ge=0)]
    cost: float
    partner: float
    vip_preferred: float


class DispatchPolicy(_Rule):
    version: str
    visit: VisitRules
    skills: SkillRules
    travel: TravelRules
    partners: PartnerRules
    auto_book: AutoBookRules
    score: ScoreWeights


def parse_dispatch_policy(
    data: Mapping[str, Any], visit_minutes: Mapping[str, int]
) -> DispatchPolicy:
    """The policy, with the visit lengths of the booking policy (one source for both)."""
    visit = {**data["visit"], "duration_min": dict(visit_minutes)}
    return DispatchPolicy.model_validate({**data, "visit": visit, "version": str(data["version"])})


@cache
def load_dispatch_policy() -> DispatchPolicy:
    """The dispatch policy shipped with this build (shared layer data)."""
    from aftercare.domain.calendar import load_booking_policy  # the calendar's rules: when loaded

    data = load(DATA_FOLDER, "dispatch.yaml")
    return parse_dispatch_policy(data, load_booking_policy().visit_minutes)

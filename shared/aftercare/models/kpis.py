"""KPI shapes: the definitions (data), what the aggregator knows about one ticket, visit or
booking (its *facts*), and the report the API and the CLI show.

Facts are merged, never overwritten: every field has a merge rule that does not depend on the
order records arrive in (earliest time, highest version, highest outcome rank, a flag once set
stays set), so a redelivered or out-of-order stream record leaves the same facts behind.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class KpiDefinitions(BaseModel):
    """`data/kpis.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    version: int
    dimensions: list[str]
    default_channel: str
    histograms: dict[str, list[int]]
    backlog_age_days: list[int]
    travel_minutes_per_booking: int = Field(ge=0)
    max_range_days: int = Field(ge=1)


class TicketFacts(BaseModel):
    """One ticket as the KPIs see it (merged from its record, its audit entries and repeats)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    ticket_id: str
    dims: dict[str, str] | None = None  # dimension -> value, from the lowest version seen
    dims_version: int | None = None
    opened_at: AwareDatetime | None = None
    sla_response_due: AwareDatetime | None = None
    sla_resolution_due: AwareDatetime | None = None
    status: str | None = None  # from the highest version seen
    status_version: int | None = None
    first_response_at: AwareDatetime | None = None  # earliest move out of `open`
    resolved_at: AwareDatetime | None = None
    resolution: str | None = None
    resolved_by: str | None = None  # the engineer of the ticket's visit, if any
    repeated: bool = False  # a repeat ticket names this one (intake: within the repeat window)
    breaches: dict[str, AwareDatetime] = Field(default_factory=dict)  # target -> first breach
    survey_sent_at: AwareDatetime | None = None
    survey_answered_at: AwareDatetime | None = None
    survey_rating: int | None = None


class VisitFacts(BaseModel):
    """One visit (booking) as first-time fix sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    booking_id: str
    engineer_id: str | None = None
    partner: str | None = None
    model: str | None = None
    day: date | None = None  # the visit's start day (its earliest known time)
    outcome: str | None = None  # the highest-ranked outcome seen
    started: bool = False  # the engineer was on site


class BookingFacts(BaseModel):
    """One booking on an engineer's calendar, for utilisation (from the highest version)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    booking_id: str
    version: int = 0
    status: str | None = None
    engineer_id: str | None = None
    partner: str | None = None
    region: str | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


Facts = TicketFacts | VisitFacts | BookingFacts


class KpiUpdate(BaseModel):
    """What one stream record says about one ticket, visit or booking."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    event_id: str  # the stream record's id + what it is about (logs, a failed record)
    kind: str  # the lifecycle event (opened, first_response, resolved, ...), for logs and metrics
    facts: Facts


Counters = dict[str, int]

DimensionName = Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]


class KpiFigures(BaseModel):
    """The KPIs of one group (a dimension value, or everything) over a period."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    period: dict[str, str]
    group: dict[str, str] | None = None
    kpis: dict[str, Any]

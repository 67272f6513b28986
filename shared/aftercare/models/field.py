"""Field service as the contract has it: engineers (in-house and partner), their working time,
visits booked on their calendars, and the slots offered to customers.

How engineers are chosen (`aftercare.domain.dispatch`), how a calendar refuses an overlap
(`aftercare.domain.calendar` and its adapter) and how a visit runs (`aftercare.domain.visits`)
are the domain's; these say what the records look like to everyone who reads them: the API,
the stores, the CLI and the demo.

Times: every instant is timezone-aware (stored as UTC ISO-8601); working hours are wall-clock
times in the engineer's own IANA time zone.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from aftercare.models.booking_states import BookingSource, BookingStatus, VerificationOutcome

ENGINEER_ID_PATTERN = r"^E-[A-Za-z0-9_-]{1,40}$"
PARTNER_ID_PATTERN = r"^PTN-[A-Za-z0-9_-]{1,40}$"
BOOKING_ID_PATTERN = r"^B-[A-Za-z0-9_-]{1,64}$"
SLOT_ID_PATTERN = r"^S-[A-Za-z0-9_.:-]{1,120}$"

EngineerId = Annotated[str, StringConstraints(pattern=ENGINEER_ID_PATTERN)]
PartnerId = Annotated[str, StringConstraints(pattern=PARTNER_ID_PATTERN)]
BookingId = Annotated[str, StringConstraints(pattern=BOOKING_ID_PATTERN)]
SlotId = Annotated[str, StringConstraints(pattern=SLOT_ID_PATTERN)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class EngineerKind(StrEnum):
    IN_HOUSE = "in_house"
    PARTNER = "partner"


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class Skill(_Frozen):
    """What an engineer can repair: a product model (``*`` for any) and a fault category
    (``*`` for any), at a level 1 (assist) .. 3 (expert)."""

    model: str = "*"
    category: str = "*"
    level: int = Field(ge=1, le=3)


class Shift(_Frozen):
    """One stretch of working time on a weekday, wall clock in the engineer's time zone."""

    start: time
    end: time


class Absence(_Frozen):
    start: AwareDatetime
    end: AwareDatetime
    reason: str = "absence"


class GeoPoint(_Frozen):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Partner(_Frozen):
    """A third-party repair company and its contract with us."""

    partner_id: PartnerId
    name: str
    regions: list[str]
    daily_job_cap: int = Field(ge=1)
    cost_per_visit: float = Field(ge=0)
    currency: str = "EUR"
    promised_response_h: float = Field(gt=0)


class Engineer(_Frozen):
    engineer_id: EngineerId
    name: str
    kind: EngineerKind
    partner: PartnerId | None = None
    skills: list[Skill]
    regions: list[str]
    home: GeoPoint
    time_zone: str
    working_hours: dict[Weekday, list[Shift]]
    absences: list[Absence] = Field(default_factory=list)
    cost_per_visit: float = Field(default=0, ge=0)
    active: bool = True


LIVE_BOOKING_STATUSES = frozenset(
    {BookingStatus.SCHEDULED, BookingStatus.EN_ROUTE, BookingStatus.ON_SITE}
)
"""A live booking occupies its engineer's time; a finished or cancelled one frees it."""

BOOKING_TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.SCHEDULED: frozenset(
        {BookingStatus.EN_ROUTE, BookingStatus.CANCELLED, BookingStatus.CANNOT_COMPLETE}
    ),
    BookingStatus.EN_ROUTE: frozenset(
        {BookingStatus.ON_SITE, BookingStatus.CANNOT_COMPLETE, BookingStatus.CANCELLED}
    ),
    BookingStatus.ON_SITE: frozenset({BookingStatus.COMPLETED, BookingStatus.CANNOT_COMPLETE}),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.CANNOT_COMPLETE: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
}


class Booking(_Frozen):
    """One visit on one engineer's calendar for one ticket."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    booking_id: BookingId
    ticket_id: str
    engineer_id: EngineerId
    partner: PartnerId | None = None
    customer_id: str
    thing: str
    region: str
    start: AwareDatetime
    end: AwareDatetime
    time_zone: str
    status: BookingStatus
    source: BookingSource
    created_at: AwareDatetime
    updated_at: AwareDatetime
    created_by: str
    version: int = 1
    reason: str | None = None
    notes: str | None = None
    parts_used: list[str] = Field(default_factory=list)
    verification: VerificationOutcome | None = None
    rescheduled_from: BookingId | None = None


class Slot(_Frozen):
    """A window offered to a customer: one engineer's free time, held briefly once offered."""

    slot_id: SlotId
    engineer_id: EngineerId
    start: AwareDatetime
    end: AwareDatetime
    time_zone: str
    local_start: str
    local_end: str
    partner: PartnerId | None = None
    hold_expires_at: AwareDatetime | None = None
    # False: the visit ends after the ticket's resolution deadline (offered per policy only).
    within_sla: bool = True

"""An engineer's visit as the contract has it: the status changes an engineer reports on a
booking, the job list they read, and the visit record kept on the ticket for first-time-fix KPIs.

How a visit moves its ticket (and when the device verifies the fix) is the domain's
(`aftercare.domain.visits`); these are the shapes the API, the stores and the CLI share.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from aftercare.models.booking_states import BookingStatus, VerificationOutcome

if TYPE_CHECKING:  # JobView.of reads a booking; the visit records need only its states
    from aftercare.models.field import Booking

SkuText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class JobStatus(StrEnum):
    """What an engineer may report on a booking (a subset of `BookingStatus`)."""

    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    COMPLETED = "completed"
    CANNOT_COMPLETE = "cannot_complete"

    @property
    def booking_status(self) -> BookingStatus:
        return BookingStatus(self.value)


class SetJobStatus(BaseModel):
    """`POST /bookings/{id}/status`: the new status, checked against the version read."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    status: JobStatus
    expected_version: int = Field(ge=1, description="the booking's `version` the engineer saw")
    parts_used: list[SkuText] | None = Field(
        default=None,
        max_length=32,
        description="SKUs used (completed): held lines listed are consumed, the others released;"
        " omitted: every held line is consumed",
    )
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None, description="why the visit cannot be completed (required for that status)"
    )

    @model_validator(mode="after")
    def _reason_for_cannot_complete(self) -> SetJobStatus:
        if self.status is JobStatus.CANNOT_COMPLETE and not self.reason:
            raise ValueError("cannot_complete needs a reason (wrong part, customer absent, ...)")
        return self


class VisitSummary(BaseModel):
    """The ticket's latest visit as its record shows it (what the notifier tells customers)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    booking_id: str
    engineer_id: str
    status: BookingStatus
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    time_zone: str | None = None


class VisitOutcome(StrEnum):
    """Where a visit ended, for first-time-fix: only `verified` and `unverified` count as fixed."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # engineer done, the device not heard yet
    VERIFIED = "verified"
    UNVERIFIED = "unverified"  # device offline / no answer: resolved on the engineer's word
    FAILED = "failed"  # the device still reports the fault
    CANNOT_COMPLETE = "cannot_complete"
    REPEATED = "repeated"  # the same code came back within the repeat window


FIXED_OUTCOMES = frozenset({VisitOutcome.VERIFIED, VisitOutcome.UNVERIFIED})


class VisitRecord(BaseModel):
    """One visit as kept beside its ticket (`TICKET#<id> / VISIT#<booking_id>`): what KPIs read
    for the first-time-fix rate per engineer, model and fault code."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    booking_id: str
    ticket_id: str
    engineer_id: str
    partner: str | None = None
    model: str
    fault_code: str
    status: BookingStatus
    outcome: VisitOutcome
    updated_at: AwareDatetime
    reason: str | None = None
    parts_used: list[str] = Field(default_factory=list)
    verification: VerificationOutcome | None = None
    verification_request: str | None = None
    repeat_ticket: str | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    time_zone: str | None = None

    def summary(self) -> VisitSummary:
        return VisitSummary(
            booking_id=self.booking_id,
            engineer_id=self.engineer_id,
            status=self.status,
            start=self.start,
            end=self.end,
            time_zone=self.time_zone,
        )

    @property
    def first_time_fix(self) -> bool:
        return self.outcome in FIXED_OUTCOMES


class JobView(BaseModel):
    """One of an engineer's jobs (a row of `GET /me/jobs`): the booking, flat, with what the
    engineer needs to know about its ticket."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    booking_id: str
    ticket_id: str
    thing: str
    customer_id: str
    region: str
    start: AwareDatetime
    end: AwareDatetime
    time_zone: str
    status: BookingStatus
    version: int
    fault_code: str | None = None
    title_en: str | None = None
    priority: str | None = None
    model: str | None = None
    ticket_status: str | None = None
    verification: VerificationOutcome | None = None

    @classmethod
    def of(cls, booking: Booking, **ticket: str | None) -> JobView:
        return cls(
            **booking.model_dump(
                include={
                    "booking_id",
                    "ticket_id",
                    "thing",
                    "customer_id",
                    "region",
                    "start",
                    "end",
                    "time_zone",
                    "status",
                    "version",
                    "verification",
                }
            ),
            **ticket,
        )

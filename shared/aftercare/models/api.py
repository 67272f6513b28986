"""The support API's request and response bodies (the OpenAPI document is generated from them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from aftercare.models.diagnostics import DiagnosticRecord, Routine
from aftercare.models.ids import RequestId, ThingName, TicketId
from aftercare.models.tickets import Occurrence, TicketRecord, TicketStatus, TimelineEntry

__all__ = [
    "DiagnosticsList",
    "Me",
    "RequestId",
    "Routine",
    "StartDiagnostic",
    "SurveyId",
    "SurveyView",
    "Thing",
    "TicketId",
    "TicketRow",
    "TicketView",
]

Thing = ThingName

ParamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ParamValue = (
    bool
    | Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
    | Annotated[float, Field(ge=-1e9, le=1e9, allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=256)]
    | Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=32)]
)


class StartDiagnostic(BaseModel):
    """Run a routine on the ticket's device. Defaults: the ticket's routine, parameters that
    point it at the ticket's fault, and the deployment's diagnostics timeout."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    routine: Routine | None = None
    params: (
        Annotated[
            dict[ParamName, ParamValue],
            # keys are checked: say so in the schema too (pydantic only emits patternProperties)
            Field(max_length=16, json_schema_extra={"additionalProperties": False}),
        ]
        | None
    ) = None
    timeout_s: Annotated[int, Field(ge=5, le=3600)] | None = Field(
        default=None, description="seconds the device has to answer"
    )


class TicketRow(BaseModel):
    """One line of a ticket listing (the CLI's `tickets list --json` fields, and more)."""

    model_config = ConfigDict(defer_build=True)

    ticket_id: str
    thing: str
    fault_code: str
    status: TicketStatus
    priority: str
    occurrences: int
    repeat_of: str | None = None
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    customer_id: str
    title_en: str
    flags: list[str] = Field(default_factory=list)
    resolution: str | None = None
    channel: str = "device"  # where it was raised (KPIs by channel)

    @classmethod
    def of(cls, ticket: TicketRecord) -> TicketRow:
        return cls.model_validate(ticket.model_dump())


class CostEstimateView(BaseModel):
    """What the customer is expected to pay for the repair, from the price table (README,
    "Transparent pricing"): parts still held or used, plus labour for the expected path
    (remote fee, or call-out + hours on site); 0 in warranty."""

    model_config = ConfigDict(defer_build=True)

    in_warranty: bool
    on_site: bool
    currency: str
    parts: Decimal
    labour: Decimal
    total: Decimal
    customer_pays: Decimal
    pricing_version: str


class TicketView(TicketRecord):
    """A ticket with its occurrences, parts lines, timeline, diagnostics and cost estimate."""

    occurrence_history: list[Occurrence]
    timeline: list[TimelineEntry]
    diagnostics: list[DiagnosticRecord]
    estimate: CostEstimateView | None = None


class DiagnosticsList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    ticket_id: str
    diagnostics: list[DiagnosticRecord]


class Me(BaseModel):
    model_config = ConfigDict(defer_build=True)

    username: str
    groups: list[str]
    customer_id: str | None = None


SurveyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class SurveyView(BaseModel):
    """A satisfaction survey as its owner (or staff) sees it."""

    model_config = ConfigDict(defer_build=True)

    survey_id: str
    ticket_id: str
    fault_code: str
    title_en: str
    title_zh: str
    status: str = Field(description="scheduled | sent | failed | answered")
    sent_at: AwareDatetime | None = None
    rating: int | None = None
    comment: str | None = None
    answered_at: AwareDatetime | None = None

"""Ticket shapes the contract owns: the status and resolution vocabularies, and the records
stored beside a ticket and shown as they are (its occurrences and its timeline).

The domain decides what happens to a ticket (`aftercare.domain.tickets`); these say what a
ticket's parts look like to everyone who reads them: the API, the stores, the CLI.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.models.parts import PartsLine, WantedPart
from aftercare.models.severity import Severity
from aftercare.models.visits import VisitSummary


class TicketStatus(StrEnum):
    OPEN = "open"
    DIAGNOSING = "diagnosing"
    AWAITING_PARTS = "awaiting_parts"
    SCHEDULED = "scheduled"
    IN_REPAIR = "in_repair"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# Active and not yet booked or under repair: where a visit may be dispatched. Here rather than in
# the dispatch rules, so the escalation rules (read by every new ticket) need not import those.
DISPATCHABLE_STATES = frozenset(
    {TicketStatus.OPEN, TicketStatus.DIAGNOSING, TicketStatus.AWAITING_PARTS}
)


class Priority(StrEnum):
    """Service priority from the policy's points (P1 most urgent)."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class CustomerTier(StrEnum):
    STANDARD = "standard"
    VIP = "vip"


class TicketFlag(StrEnum):
    """Marks on a ticket that change what happens next."""

    NEEDS_ONSITE_DISPATCH = "needs_onsite_dispatch"
    PARTNERS_ALLOWED = "partners_allowed"  # SLA escalation: dispatch may send a partner
    SLA_BREACHED = "sla_breached"  # SLA escalation: a deadline passed unmet


class Channel(StrEnum):
    """Where a ticket (or a report joining it) came from: the device itself, or a person on one
    of the service channels (KPIs are cut by it)."""

    DEVICE = "device"
    APP = "app"
    WEB = "web"
    PHONE = "phone"
    CHAT = "chat"
    EMAIL = "email"
    ONSITE = "onsite"


class Origin(BaseModel):
    """Who raised a ticket or a report, and through which channel. `raised_by` is
    `device:<thing>`, `customer:<customer_id>` or `agent:<username>`."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    channel: Channel
    raised_by: str
    preferred_contact: str | None = None

    @classmethod
    def device(cls, thing: str) -> Origin:
        return cls(channel=Channel.DEVICE, raised_by=f"device:{thing}")


class Resolution(StrEnum):
    """How a resolved ticket was fixed (KPI: share of remote fixes)."""

    REMOTE = "remote"
    ON_SITE = "on_site"
    SELF_SERVICE = "self_service"  # the customer followed a guide and the device confirmed it
    FLEET_FIX = "fleet_fix"  # its fleet incident's fix (firmware, reset campaign) cleared it


class TimelineEntry(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    at: AwareDatetime
    kind: str
    actor: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Occurrence(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    fault_id: str
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    severity: Severity
    firmware: str
    readings: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    channel: Channel = Channel.DEVICE
    raised_by: str | None = None


class TicketSummary(BaseModel):
    """Who a ticket is for, which fault on which device, where it stands and what is held for
    it: the part of the record a customer message is written from.

    The record is this plus the service fields (`TicketRecord`), so a ticket *is* a summary;
    a notification or survey keeps `TicketSummary.of(ticket)` as its snapshot of the ticket
    at the event (stored under `facts`)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    customer_id: str
    thing: str
    model: str
    fault_code: str
    title_en: str
    title_zh: str
    category: str
    region: str
    severity: Severity
    status: TicketStatus
    in_warranty: bool
    remote_fixable: bool = False
    auto_diagnose: bool = False
    routine: str | None = None
    parts: list[PartsLine] = Field(default_factory=list)
    flags: list[TicketFlag] = Field(default_factory=list)
    resolution: Resolution | None = None
    resolved_at: AwareDatetime | None = None
    opened_at: AwareDatetime
    first_seen: AwareDatetime
    visit: VisitSummary | None = None  # its latest visit, as the engineer reported it
    incident_id: str | None = None  # the fleet incident it is a child of

    @classmethod
    def of(cls, ticket: TicketSummary) -> TicketSummary:
        """The summary alone (a full record narrowed to the summary's fields)."""
        return cls.model_validate({name: getattr(ticket, name) for name in cls.model_fields})

    def title(self, language: str) -> str:
        return self.title_zh if language.startswith("zh") and self.title_zh else self.title_en


class TicketRecord(TicketSummary):
    """A ticket's fields as the contract has them: stored in the ticket's item, shown by the API.

    The domain's `Ticket` adds behaviour; a field only the domain needs goes there, not here,
    so that it is never public by accident."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    serial: str
    customer_tier: CustomerTier
    unclassified: bool
    priority: Priority
    updated_at: AwareDatetime
    last_seen: AwareDatetime
    occurrences: int
    latest_readings: dict[str, Any] = Field(default_factory=dict)
    latest_message: str | None = None
    firmware: str
    repeat_of: str | None = None
    sla_response_due: AwareDatetime
    sla_resolution_due: AwareDatetime
    # Where the ticket stands in dispatch (aftercare.domain.ports.dispatch.DispatchState);
    # absent until a visit is needed and the Dispatcher has decided.
    dispatch_state: str | None = None
    parts_arrived_at: AwareDatetime | None = None  # a backorder the ticket waited for arrived
    suggested_parts: list[WantedPart] = Field(default_factory=list)
    catalog_version: str
    policy_version: str
    opened_by_fault: str
    version: int = 1
    dispatch_reason: str | None = None  # why the ticket needs (another) visit
    channel: Channel = Channel.DEVICE  # where the ticket was raised (KPIs by channel)
    raised_by: str | None = None  # device:<thing> | customer:<id> | agent:<username>
    preferred_contact: str | None = None  # how the person who raised it wants to be reached
    # Times the customer said "I followed the guide" and the device was asked to confirm
    # (deflection = tickets resolved `self_service` / tickets with attempts).
    self_service_attempts: int = 0

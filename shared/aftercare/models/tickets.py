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
from aftercare.models.payloads import Severity
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


class Resolution(StrEnum):
    """How a resolved ticket was fixed (KPI: share of remote fixes)."""

    REMOTE = "remote"
    ON_SITE = "on_site"


class TimelineEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    kind: str
    actor: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Occurrence(BaseModel):
    model_config = ConfigDict(frozen=True)

    fault_id: str
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    severity: Severity
    firmware: str
    readings: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


class TicketRecord(BaseModel):
    """A ticket's fields as the contract has them: stored in the ticket's item, shown by the API.

    The domain's `Ticket` adds behaviour; a field only the domain needs goes there, not here,
    so that it is never public by accident."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    thing: str
    serial: str
    model: str
    customer_id: str
    customer_tier: CustomerTier
    region: str
    fault_code: str
    category: str
    title_en: str
    title_zh: str
    unclassified: bool
    severity: Severity
    priority: Priority
    in_warranty: bool
    status: TicketStatus
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    occurrences: int
    latest_readings: dict[str, Any] = Field(default_factory=dict)
    latest_message: str | None = None
    firmware: str
    repeat_of: str | None = None
    sla_response_due: AwareDatetime
    sla_resolution_due: AwareDatetime
    routine: str | None = None
    remote_fixable: bool = False
    auto_diagnose: bool = False
    suggested_parts: list[WantedPart] = Field(default_factory=list)
    catalog_version: str
    policy_version: str
    opened_by_fault: str
    version: int = 1
    resolved_at: AwareDatetime | None = None
    resolution: Resolution | None = None
    flags: list[TicketFlag] = Field(default_factory=list)
    dispatch_reason: str | None = None  # why the ticket needs (another) visit
    visit: VisitSummary | None = None  # its latest visit, as the engineer reported it
    parts: list[PartsLine] = Field(default_factory=list)

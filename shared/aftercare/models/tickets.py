"""Ticket shapes the contract owns: the status and resolution vocabularies, and the records
stored beside a ticket and shown as they are (its occurrences and its timeline).

The domain decides what happens to a ticket (`aftercare.domain.tickets`); these say what a
ticket's parts look like to everyone who reads them: the API, the stores, the CLI.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.models.payloads import Severity


class TicketStatus(StrEnum):
    OPEN = "open"
    DIAGNOSING = "diagnosing"
    AWAITING_PARTS = "awaiting_parts"
    SCHEDULED = "scheduled"
    IN_REPAIR = "in_repair"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


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

"""Diagnostics records beside their tickets: the constants, errors and plans the
request, answer and timeout paths share, and the ids that tie a request to its ticket.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from aftercare.domain.tickets import StatusChange, Ticket
from aftercare.models.diagnostics import DiagnosticRecord
from aftercare.models.parts import WantedPart
from aftercare.models.tickets import TicketFlag, TicketStatus, TimelineEntry

REMEDY_ROUTINES = frozenset({"reset_component"})
VERIFY_ROUTINE = "self_test"
ONSITE_FLAG = TicketFlag.NEEDS_ONSITE_DISPATCH
# An answer received this long after the deadline still counts: it was in flight.
RESULT_GRACE = timedelta(seconds=5)
DEFAULT_TIMEOUT = timedelta(minutes=5)
MAX_ATTEMPTS = 3
SYSTEM_ACTOR = "diagnostics"


class TicketNotActive(Exception):
    """Diagnostics run only on active tickets."""

    def __init__(self, ticket_id: str, status: TicketStatus) -> None:
        super().__init__(f"ticket {ticket_id} is {status}; diagnostics need an active ticket")
        self.ticket_id = ticket_id
        self.status = status


class VerificationPending(Exception):
    """A self-service verification of this ticket is already waiting for the device."""


class PublishFailed(Exception):
    """The request could not be handed to the device's command topic."""


class DiagnosticNotFound(LookupError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"diagnostic {request_id} not found")
        self.request_id = request_id


class TicketPatch(BaseModel):
    """Diagnostics-owned ticket fields (flags, suggested parts), guarded by the ticket's status
    and its diagnostics revision so concurrent answers cannot overwrite each other."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    expected_status: TicketStatus
    expected_rev: int
    flags: list[str]
    suggested_parts: list[WantedPart]
    updated_at: AwareDatetime


class CompletionPlan(BaseModel):
    """Everything one answer (or timeout) changes, applied in one transaction."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    record: DiagnosticRecord
    entries: list[TimelineEntry]
    status_change: StatusChange | None = None
    ticket_patch: TicketPatch | None = None
    follow_up: DiagnosticRecord | None = None


class DiagnosticContext(BaseModel):
    """A ticket and one of its diagnostics as read together, with the ticket's diagnostics
    revision (0 when never patched)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket: Ticket | None
    record: DiagnosticRecord | None
    rev: int = 0


def new_request_id(ticket_id: str) -> str:
    return f"{ticket_id}_{secrets.token_hex(8)}"


def derived_request_id(ticket_id: str, basis: str) -> str:
    """Deterministic id (auto-diagnosis, verification): a redelivered trigger finds its request."""
    digest = hashlib.sha256(f"{ticket_id}|{basis}".encode()).hexdigest()[:16]
    return f"{ticket_id}_{digest}"


def ticket_of(request_id: str) -> str | None:
    head, sep, tail = request_id.rpartition("_")
    return head if sep and head and tail else None


def default_params(routine: str, ticket: Ticket) -> dict[str, Any]:
    """What a routine needs to be about this ticket's fault."""
    if routine == "reset_component":
        return {"code": ticket.fault_code}
    if routine == "log_excerpt":
        return {"lines": 50}
    return {}


def requested_entry(record: DiagnosticRecord) -> TimelineEntry:
    return TimelineEntry(
        at=record.requested_at,
        kind="diagnostics_requested",
        actor=record.requested_by,
        detail={
            "request_id": record.request_id,
            "routine": record.routine,
            "params": record.params,
            "purpose": record.purpose.value,
            "expires_at": record.expires_at.isoformat(),
        },
    )

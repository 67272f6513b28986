"""Diagnostics as the contract has them: the routines, a request's states, purposes and
outcomes, and the record of one request and its answer (stored under its ticket, shown by
the API as it is).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.models.payloads import DiagnosticsRequest, DiagnosticsResult
from aftercare.models.visits import VisitRecord


class DiagnosticState(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    TIMED_OUT = "timed_out"
    FAILED = "failed"  # could not be handed to the device (publish failed)
    CANCELLED = "cancelled"  # its ticket was resolved or cancelled before an answer


class Purpose(StrEnum):
    ENGINEER = "engineer"
    AUTO = "auto"
    VERIFY = "verify"
    VISIT_VERIFY = "visit_verify"  # after an engineer's visit: is the fault gone?
    SELF_SERVICE = "self_service"  # the customer followed a guide: is the fault gone?
    GUIDE_STEP = "guide_step"  # a guide step's device routine, run for the customer
    FLEET_FIX = "fleet_fix"  # a fleet incident's fix campaign: did it clear this device?


class Outcome(StrEnum):
    NO_ACTION = "no_action"
    VERIFYING = "verifying"
    REMOTE_FIX = "remote_fix"
    REMOTE_FIX_FAILED = "remote_fix_failed"
    PARTS_SUGGESTED = "parts_suggested"
    TIMED_OUT = "timed_out"
    VISIT_VERIFIED = "visit_verified"  # the device confirms the visit fixed it: resolved
    VISIT_FIX_FAILED = "visit_fix_failed"  # the fault is still there: back to dispatch
    VISIT_UNVERIFIED = "visit_unverified"  # no answer: resolved on the engineer's word
    SELF_SERVICE_FIXED = "self_service_fixed"  # the device confirms the guide fixed it
    SELF_SERVICE_FAILED = "self_service_failed"  # the fault is still there: towards dispatch
    FLEET_FIXED = "fleet_fixed"  # the incident's fix cleared it: resolved `fleet_fix`
    FLEET_FIX_FAILED = "fleet_fix_failed"  # still faulty: the ticket stays on the normal path


class Routine(StrEnum):
    """Routines every device agent runs (a device answers `unsupported` to others)."""

    SELF_TEST = "self_test"
    SENSOR_SNAPSHOT = "sensor_snapshot"
    LOG_EXCERPT = "log_excerpt"
    RESET_COMPONENT = "reset_component"


ROUTINES: tuple[str, ...] = tuple(routine.value for routine in Routine)


class DiagnosticRecord(BaseModel):
    """One diagnostics request and (once answered) its result; stored under its ticket."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    request_id: str
    ticket_id: str
    thing: str
    routine: str
    params: dict[str, Any] = Field(default_factory=dict)
    purpose: Purpose
    parent_request_id: str | None = None
    requested_by: str
    requested_at: AwareDatetime
    expires_at: AwareDatetime
    status: DiagnosticState = DiagnosticState.PENDING
    result: DiagnosticsResult | None = None
    received_at: AwareDatetime | None = None
    latency_ms: int | None = None
    outcome: Outcome | None = None
    detail: str | None = None
    cancelled_at: AwareDatetime | None = None
    visit: VisitRecord | None = None  # the visit a VISIT_VERIFY request verifies

    def request(self) -> DiagnosticsRequest:
        return DiagnosticsRequest(
            request_id=self.request_id,
            routine=self.routine,
            params=self.params,
            expires_at=self.expires_at,
        )

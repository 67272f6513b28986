"""Self-service the device confirms: a customer who followed a troubleshooting guide says so, the
device is asked to verify (the diagnostics round trip, purpose `self_service`), and its answer
decides: the fault is gone -> the ticket resolves with `resolution: self_service` (held parts
released, as for a remote fix); still there -> flagged `needs_onsite_dispatch` (the failed
remote fix's path). No answer by the deadline -> timed out, flagged for dispatch as well: no
device evidence, no deflection. The answer side lives in `diagnostics_plans`; this module starts
an attempt.

A guide step may name a safe device routine (`routine: reset_component` in guides.yaml, e.g.
"restart the network module from the app"): `run_guide_step` runs it through the same
diagnostics round trip (purpose `guide_step`), once per step and attempt. Its answer is
recorded on the ticket's timeline and changes nothing else: a guide step that reset the
component is not the customer's confirmation; the verification after "I followed the guide"
decides, as for every other step. An unanswered step times out without flagging the ticket.

Deflection is measured from device evidence: each attempt counts on the ticket
(`self_service_attempts`) and as the `SelfServiceAttempted` metric; only a device's confirmation
resolves a ticket `self_service` (`SelfServiceResolved`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_records import (
    PublishFailed,
    TicketNotActive,
    VerificationPending,
    default_params,
    derived_request_id,
    requested_entry,
)
from aftercare.domain.guides import Guide, GuideBook
from aftercare.domain.ports import CommandPublisher, DiagnosticsStore
from aftercare.domain.ports.diagnostics import SelfServiceAttempts
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import DiagnosticRecord, DiagnosticState, Purpose
from aftercare.models.tickets import TimelineEntry


class NotSelfServiceable(Exception):
    """The ticket's code (on its model) has no guide a customer may confirm."""


class NoStepRoutine(Exception):
    """The guide has no such step, or the step asks the device for nothing."""


class SelfServiceStore(DiagnosticsStore, SelfServiceAttempts, Protocol):
    """The diagnostics store with self-service attempts."""


def pending_verification(records: Sequence[DiagnosticRecord]) -> DiagnosticRecord | None:
    return next(
        (
            r
            for r in records
            if r.purpose is Purpose.SELF_SERVICE and r.status is DiagnosticState.PENDING
        ),
        None,
    )


def plan_attempt(
    ticket: Ticket,
    guide: Guide,
    *,
    actor: str,
    now: datetime,
    timeout: timedelta,
) -> tuple[DiagnosticRecord, list[TimelineEntry]]:
    """The verification request of the ticket's next attempt and its timeline entries (pure).
    Its id derives from the attempt number, so a retried call finds the same request."""
    attempt = ticket.self_service_attempts + 1
    record = DiagnosticRecord(
        request_id=derived_request_id(ticket.ticket_id, f"self_service|{attempt}"),
        ticket_id=ticket.ticket_id,
        thing=ticket.thing,
        routine=guide.verify_routine.value,
        params=default_params(guide.verify_routine.value, ticket),
        purpose=Purpose.SELF_SERVICE,
        requested_by=actor,
        requested_at=now,
        expires_at=now + timeout,
    )
    followed = TimelineEntry(
        at=now,
        kind="self_service_followed",
        actor=actor,
        detail={"guide_id": guide.id, "attempt": attempt, "request_id": record.request_id},
    )
    return record, [followed, requested_entry(record)]


def start_self_service(
    ticket: Ticket,
    records: Sequence[DiagnosticRecord],
    *,
    guides: GuideBook,
    store: SelfServiceStore,
    publisher: CommandPublisher,
    actor: str,
    now: datetime,
    timeout: timedelta,
) -> DiagnosticRecord:
    """Record the customer's attempt and ask the device to verify (`records`: the ticket's
    diagnostics). Raises TicketNotActive, NotSelfServiceable, VerificationPending, or
    PublishFailed (the request is then marked failed; the attempt stays counted)."""
    if not ticket.active:
        raise TicketNotActive(ticket.ticket_id, ticket.status)
    guide = guides.self_serviceable(ticket.fault_code, ticket.model)
    if guide is None:
        raise NotSelfServiceable(f"{ticket.fault_code} on {ticket.model} has no self-service guide")
    waiting = pending_verification(records)
    if waiting is not None:
        raise VerificationPending(
            f"verification {waiting.request_id} is waiting for the device until "
            f"{waiting.expires_at.isoformat()}"
        )
    record, entries = plan_attempt(ticket, guide, actor=actor, now=now, timeout=timeout)
    store.create_attempt(record, entries, ticket.self_service_attempts + 1)
    try:
        publisher.publish(record.thing, record.request())
    except PublishFailed as exc:
        failed = TimelineEntry(
            at=now,
            kind="diagnostics_failed",
            actor="diagnostics",
            detail={"request_id": record.request_id, "reason": str(exc)},
        )
        store.fail(record.model_copy(update={"detail": str(exc)}), failed)
        raise
    return record


def run_guide_step(
    ticket: Ticket,
    step: int,
    *,
    guides: GuideBook,
    store: DiagnosticsStore,
    publisher: CommandPublisher,
    actor: str,
    now: datetime,
    timeout: timedelta,
) -> DiagnosticRecord:
    """Run step `step` (1-based) of the ticket's self-service guide on its device. Raises
    TicketNotActive, NotSelfServiceable, NoStepRoutine, or PublishFailed (marked failed)."""
    if not ticket.active:
        raise TicketNotActive(ticket.ticket_id, ticket.status)
    guide = guides.self_serviceable(ticket.fault_code, ticket.model)
    if guide is None:
        raise NotSelfServiceable(f"{ticket.fault_code} on {ticket.model} has no self-service guide")
    routine = guide.steps[step - 1].routine if 1 <= step <= len(guide.steps) else None
    if routine is None:
        raise NoStepRoutine(f"step {step} of {guide.id} runs nothing on the device")
    attempt = ticket.self_service_attempts + 1
    return start_diagnostic(
        store,
        publisher,
        ticket,
        routine=routine.value,
        params=None,
        timeout=timeout,
        actor=actor,
        purpose=Purpose.GUIDE_STEP,
        now=now,
        request_id=derived_request_id(ticket.ticket_id, f"guide_step|{attempt}|{step}"),
    )

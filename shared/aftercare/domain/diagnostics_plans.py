"""What a diagnostics answer, timeout or cancellation changes on its ticket (pure planning)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aftercare.domain.diagnostics_records import (
    DEFAULT_TIMEOUT,
    ONSITE_FLAG,
    REMEDY_ROUTINES,
    SYSTEM_ACTOR,
    VERIFY_ROUTINE,
    CompletionPlan,
    TicketPatch,
    derived_request_id,
    requested_entry,
)
from aftercare.domain.rules import FaultCatalog
from aftercare.domain.tickets import TRANSITIONS, StatusChange, Ticket, plan_status_change
from aftercare.models.booking_states import VerificationOutcome
from aftercare.models.diagnostics import DiagnosticRecord, DiagnosticState, Outcome, Purpose
from aftercare.models.parts import WantedPart
from aftercare.models.payloads import (
    DiagnosticsResult,
    DiagnosticStatus,
)
from aftercare.models.tickets import Resolution, TicketStatus, TimelineEntry
from aftercare.models.visits import VisitOutcome


def _ms_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def plan_completion(
    ticket: Ticket,
    record: DiagnosticRecord,
    result: DiagnosticsResult,
    received_at: datetime,
    catalog: FaultCatalog,
    *,
    rev: int,
    now: datetime | None = None,
    verify_timeout: timedelta = DEFAULT_TIMEOUT,
) -> CompletionPlan:
    """Decide what one valid, timely answer changes (pure); `now` (default: when the answer
    was received) dates what follows from it."""
    latency = _ms_between(record.requested_at, received_at)
    entry = TimelineEntry(
        at=received_at,
        kind="diagnostics_result",
        actor=f"device:{record.thing}",
        detail={
            "request_id": record.request_id,
            "routine": record.routine,
            "status": result.status.value,
            "remedied": result.remedied,
            "findings": result.findings,
            "latency_ms": latency,
        },
    )
    decision = _decide(ticket, record, result, catalog)
    settled = record.model_copy(
        update={
            "status": DiagnosticState.COMPLETED,
            "result": result,
            "received_at": received_at,
            "latency_ms": latency,
            "outcome": decision.outcome,
        }
    )
    return _plan_for(
        ticket,
        settled,
        decision,
        entries=[entry],
        now=now or received_at,
        rev=rev,
        verify_timeout=verify_timeout,
    )


class _Decision(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    outcome: Outcome
    flag_onsite: bool = False
    parts: list[dict[str, Any]] = Field(default_factory=list)
    resolve: bool = False
    verify: bool = False
    reopen: bool = False  # a visit's fix the device does not confirm: back to dispatch


def _decide(
    ticket: Ticket, record: DiagnosticRecord, result: DiagnosticsResult, catalog: FaultCatalog
) -> _Decision:
    if not ticket.active or record.purpose is Purpose.GUIDE_STEP:
        # A guide step's routine is one step of the customer's guide: its answer is on the
        # timeline, and the customer's "I followed the guide" verification decides.
        return _Decision(outcome=Outcome.NO_ACTION)
    parts = suspected_parts(result.findings, ticket, catalog)
    if record.purpose is Purpose.FLEET_FIX:
        return _fleet_fix_decision(ticket, result)
    if record.purpose in (Purpose.VISIT_VERIFY, Purpose.SELF_SERVICE):
        return _confirmation_decision(ticket, record, result, parts)
    if record.purpose is Purpose.VERIFY or record.routine in REMEDY_ROUTINES:
        return _remedy_decision(ticket, record, result, parts)
    if result.status is DiagnosticStatus.FAILED and _adds_parts(ticket, parts):
        return _Decision(outcome=Outcome.PARTS_SUGGESTED, parts=parts)
    return _Decision(outcome=Outcome.NO_ACTION)


def _confirmation_decision(
    ticket: Ticket, record: DiagnosticRecord, result: DiagnosticsResult, parts: list[dict[str, Any]]
) -> _Decision:
    """Someone says it is fixed (an engineer's visit, a customer who followed a guide): the
    device's word decides. A visit that did not fix it goes back to dispatch; a guide that did
    not goes towards it (flagged, as a failed remote fix)."""
    fixed = verified(ticket, result)
    if record.purpose is Purpose.VISIT_VERIFY:
        if fixed:
            return _Decision(outcome=Outcome.VISIT_VERIFIED, resolve=True)
        return _Decision(outcome=Outcome.VISIT_FIX_FAILED, reopen=True, parts=parts)
    if fixed:
        return _Decision(outcome=Outcome.SELF_SERVICE_FIXED, resolve=True)
    return _Decision(outcome=Outcome.SELF_SERVICE_FAILED, flag_onsite=True, parts=parts)


def _fleet_fix_decision(ticket: Ticket, result: DiagnosticsResult) -> _Decision:
    """A fleet fix campaign's answer: the device's word decides. Cleared (a reset that
    remedied it, or a check that no longer finds the code): resolved. Not cleared: the ticket
    stays as it was, on the normal path (its own diagnostics, parts, dispatch)."""
    remedied = result.remedied and result.status is DiagnosticStatus.PASSED
    if remedied or verified(ticket, result):
        return _Decision(outcome=Outcome.FLEET_FIXED, resolve=True)
    return _Decision(outcome=Outcome.FLEET_FIX_FAILED)


def _remedy_decision(
    ticket: Ticket,
    record: DiagnosticRecord,
    result: DiagnosticsResult,
    parts: list[dict[str, Any]],
) -> _Decision:
    if record.purpose is Purpose.VERIFY and verified(ticket, result):
        return _Decision(outcome=Outcome.REMOTE_FIX, resolve=True)
    remedied = result.remedied and result.status is DiagnosticStatus.PASSED
    if record.purpose is not Purpose.VERIFY and remedied:
        return _Decision(outcome=Outcome.VERIFYING, verify=True)
    return _Decision(outcome=Outcome.REMOTE_FIX_FAILED, flag_onsite=True, parts=parts)


def verified(ticket: Ticket, result: DiagnosticsResult) -> bool:
    """A verification self-test passes when it ran and the ticket's fault code is not active."""
    if result.status not in (DiagnosticStatus.PASSED, DiagnosticStatus.FAILED):
        return False
    active = result.findings.get("active_faults")
    if not isinstance(active, list):
        return result.status is DiagnosticStatus.PASSED
    return ticket.fault_code not in active


def _codes_in(findings: Mapping[str, Any]) -> list[str]:
    codes: list[str] = []
    for key in ("active_faults", "remaining"):
        value = findings.get(key)
        if isinstance(value, list):
            codes += [c for c in value if isinstance(c, str) and c not in codes]
    return codes


def _explicit_parts(findings: Mapping[str, Any]) -> list[dict[str, Any]]:
    value = findings.get("suspect_parts")
    if not isinstance(value, list):
        return []
    parts = []
    for item in value[:16]:
        if isinstance(item, str) and item:
            parts.append({"sku": item[:64], "qty": 1})
        elif isinstance(item, dict) and isinstance(item.get("sku"), str):
            qty = item.get("qty", 1)
            count = qty if isinstance(qty, int) and not isinstance(qty, bool) and qty > 0 else 1
            parts.append({"sku": item["sku"][:64], "qty": min(count, 99)})
    return parts


def suspected_parts(
    findings: Mapping[str, Any], ticket: Ticket, catalog: FaultCatalog
) -> list[dict[str, Any]]:
    """Parts the findings point at: the catalog parts of the fault codes they report active on
    this model, and any parts the device names itself (``suspect_parts``)."""
    found: dict[str, dict[str, Any]] = {}
    for code in _codes_in(findings):
        entry = catalog.lookup(code)
        if entry is None or (entry.models and ticket.model not in entry.models):
            continue
        for part in entry.parts:
            found.setdefault(part.sku, {"sku": part.sku, "qty": part.qty})
    for named in _explicit_parts(findings):
        found.setdefault(named["sku"], named)
    return list(found.values())


def _adds_parts(ticket: Ticket, parts: Sequence[Mapping[str, Any]]) -> bool:
    known = {p.sku for p in ticket.suggested_parts}
    return any(p["sku"] not in known for p in parts)


def merged_parts(
    current: Sequence[WantedPart], found: Sequence[Mapping[str, Any]]
) -> list[WantedPart]:
    known = {p.sku for p in current}
    return [*current, *(WantedPart.model_validate(p) for p in found if p["sku"] not in known)]


def _plan_for(
    ticket: Ticket,
    settled: DiagnosticRecord,
    decision: _Decision,
    *,
    entries: list[TimelineEntry],
    now: datetime,
    rev: int,
    verify_timeout: timedelta,
) -> CompletionPlan:
    change = None
    if settled.purpose is Purpose.VISIT_VERIFY:
        change = visit_closure(ticket, settled, decision, now)
        decision = decision.model_copy(update={"flag_onsite": decision.reopen and change is None})
    elif decision.resolve and settled.purpose is Purpose.FLEET_FIX:
        change = plan_status_change(
            ticket,
            TicketStatus.RESOLVED,
            actor=SYSTEM_ACTOR,
            reason=f"fleet fix of incident {ticket.incident_id} confirmed by diagnostics "
            f"{settled.request_id}",
            now=now,
            resolution=Resolution.FLEET_FIX,
        )
    elif decision.resolve:
        self_service = settled.purpose is Purpose.SELF_SERVICE
        how = "self-service fix" if self_service else "remote fix"
        change = plan_status_change(
            ticket,
            TicketStatus.RESOLVED,
            actor=SYSTEM_ACTOR,
            reason=f"{how} verified by diagnostics {settled.request_id}",
            now=now,
            resolution=Resolution.SELF_SERVICE if self_service else Resolution.REMOTE,
        )
    patch = None if change is not None else _patch(ticket, decision, now, rev)
    if patch is not None and decision.parts and _adds_parts(ticket, decision.parts):
        entries = [*entries, _parts_entry(settled, decision.parts, now)]
    if decision.flag_onsite and ONSITE_FLAG not in ticket.flags:
        entries = [*entries, _flag_entry(settled, now)]
    follow_up = _verification(ticket, settled, now, verify_timeout) if decision.verify else None
    if follow_up is not None:
        entries = [*entries, requested_entry(follow_up)]
    return CompletionPlan(
        record=settled,
        entries=entries,
        status_change=change,
        ticket_patch=patch,
        follow_up=follow_up,
    )


def _patch(ticket: Ticket, decision: _Decision, now: datetime, rev: int) -> TicketPatch | None:
    flags = list(ticket.flags)
    if decision.flag_onsite and ONSITE_FLAG not in flags:
        flags.append(ONSITE_FLAG)
    parts = merged_parts(ticket.suggested_parts, decision.parts)
    if flags == ticket.flags and parts == ticket.suggested_parts:
        return None
    return TicketPatch(
        ticket_id=ticket.ticket_id,
        expected_status=ticket.status,
        expected_rev=rev,
        flags=flags,
        suggested_parts=parts,
        updated_at=now,
    )


def _parts_entry(
    record: DiagnosticRecord, parts: Sequence[Mapping[str, Any]], now: datetime
) -> TimelineEntry:
    return TimelineEntry(
        at=now,
        kind="parts_suggested",
        actor=SYSTEM_ACTOR,
        detail={"request_id": record.request_id, "parts": [dict(p) for p in parts]},
    )


def _flag_entry(record: DiagnosticRecord, now: datetime) -> TimelineEntry:
    return TimelineEntry(
        at=now,
        kind="flagged",
        actor=SYSTEM_ACTOR,
        detail={
            "flag": ONSITE_FLAG,
            "request_id": record.request_id,
            "because": (record.outcome or Outcome.TIMED_OUT).value,
        },
    )


def _verification(
    ticket: Ticket, remedy: DiagnosticRecord, now: datetime, timeout: timedelta
) -> DiagnosticRecord:
    return DiagnosticRecord(
        request_id=derived_request_id(ticket.ticket_id, f"verify|{remedy.request_id}"),
        ticket_id=ticket.ticket_id,
        thing=ticket.thing,
        routine=VERIFY_ROUTINE,
        params={},
        purpose=Purpose.VERIFY,
        parent_request_id=remedy.request_id,
        requested_by=SYSTEM_ACTOR,
        requested_at=now,
        expires_at=now + timeout,
    )


def plan_timeout(
    ticket: Ticket, record: DiagnosticRecord, now: datetime, *, rev: int
) -> CompletionPlan:
    """A request nobody answered in time: timed out, and the ticket needs someone on site."""
    settled = record.model_copy(
        update={"status": DiagnosticState.TIMED_OUT, "outcome": Outcome.TIMED_OUT}
    )
    entry = TimelineEntry(
        at=now,
        kind="diagnostics_timed_out",
        actor=SYSTEM_ACTOR,
        detail={
            "request_id": record.request_id,
            "routine": record.routine,
            "expired_at": record.expires_at.isoformat(),
        },
    )
    # An unanswered guide step is not a failed fix: the guide's verification decides that.
    onsite = ticket.active and record.purpose is not Purpose.GUIDE_STEP
    decision = _Decision(outcome=Outcome.TIMED_OUT, flag_onsite=onsite)
    if record.purpose is Purpose.VISIT_VERIFY:
        # Offline or silent device: the visit stands on the engineer's word, marked unverified.
        settled = settled.model_copy(update={"outcome": Outcome.VISIT_UNVERIFIED})
        decision = _Decision(outcome=Outcome.VISIT_UNVERIFIED, resolve=ticket.active)
    return _plan_for(
        ticket, settled, decision, entries=[entry], now=now, rev=rev, verify_timeout=DEFAULT_TIMEOUT
    )


VISIT_VERIFICATION = {
    Outcome.VISIT_VERIFIED: (VerificationOutcome.VERIFIED, VisitOutcome.VERIFIED),
    Outcome.VISIT_UNVERIFIED: (VerificationOutcome.UNVERIFIED, VisitOutcome.UNVERIFIED),
    Outcome.VISIT_FIX_FAILED: (VerificationOutcome.FAILED, VisitOutcome.FAILED),
}


def visit_closure(
    ticket: Ticket, settled: DiagnosticRecord, decision: _Decision, now: datetime
) -> StatusChange | None:
    """A visit's verification settles its ticket: resolved on site (verified by the device, or
    unverified when it never answered), or back to `open` for dispatch when the fault is still
    there. The visit record carries the verification; None when the ticket cannot move so (it
    is no longer in repair: the answer only flags it)."""
    verification, outcome = VISIT_VERIFICATION[decision.outcome]
    visit = (
        settled.visit.model_copy(
            update={"verification": verification, "outcome": outcome, "updated_at": now}
        )
        if settled.visit
        else None
    )
    target = TicketStatus.RESOLVED if decision.resolve else TicketStatus.OPEN
    if target not in TRANSITIONS[ticket.status]:
        return None
    booking = settled.visit.booking_id if settled.visit else "?"
    why = f"visit {booking} fix {verification.value} by diagnostics {settled.request_id}"
    change = plan_status_change(
        ticket,
        target,
        actor=SYSTEM_ACTOR,
        reason=why,
        now=now,
        resolution=Resolution.ON_SITE if decision.resolve else None,
    )
    update: dict[str, Any] = {"visit": visit}
    if decision.reopen:
        flags = [*ticket.flags]
        if ONSITE_FLAG not in flags:
            flags.append(ONSITE_FLAG)
        update |= {"flags": flags, "dispatch_reason": why}
    return change.model_copy(update=update)


def plan_cancel(
    record: DiagnosticRecord, ticket: Ticket, now: datetime
) -> tuple[DiagnosticRecord, TimelineEntry]:
    """A pending request of a ticket that left the active states: cancelled, saying why."""
    why = f"ticket {ticket.status}"
    cancelled = record.model_copy(
        update={"status": DiagnosticState.CANCELLED, "cancelled_at": now, "detail": why}
    )
    entry = TimelineEntry(
        at=now,
        kind="diagnostics_cancelled",
        actor=SYSTEM_ACTOR,
        detail={"request_id": record.request_id, "routine": record.routine, "reason": why},
    )
    return cancelled, entry

"""Remote diagnostics: ask a device, land the answer on the ticket, fix remotely when possible.

Round trip: a `DiagnosticRecord` is stored `pending` with a deadline, then the
`DiagnosticsRequest` is published to ``cmd/aftercare/{thing}/diagnostics/req`` (QoS 1; a device
that is offline gets it from its persistent session when it reconnects, and ignores it once
expired). The device answers on ``.../diagnostics/res``; `handle_result` correlates the answer by
`request_id`, checks that the addressed thing sent it, and stores it on the ticket with what
follows from it, in one transaction:

- a remedy routine (``reset_component``) that reports ``remedied`` starts a verification
  ``self_test``; when that shows the ticket's fault code gone, the ticket is resolved remotely
  (``resolution=remote``), which releases its held parts — a *remote fix*;
- a failed remedy or failed verification flags the ticket ``needs_onsite_dispatch``;
- a failed routine whose findings point at parts (active fault codes, remaining codes, or an
  explicit ``suspect_parts`` list) updates the ticket's suggested parts;
- no answer by the deadline: `sweep_timeouts` marks the request ``timed_out`` and flags the
  ticket for on-site dispatch.

Late, duplicate, malformed, unknown or foreign answers are rejected with a reason from the one
inbound vocabulary (`aftercare.domain.inbound`), parked, and change nothing.

No stale actions: a request is recorded only while its ticket is active (the record's
transaction checks the ticket's status, so a ticket resolved a moment earlier gets nothing, and
nothing is published). When a ticket is resolved or cancelled, `cancel_pending` marks its
pending requests ``cancelled`` and tells the device (``.../diagnostics/cancel``); an answer to a
cancelled request, or to any request of a ticket that is no longer active, is parked as
``request_cancelled`` and never applied.

A request id embeds its ticket id (``<ticket_id>_<token>``), so an answer finds its record with
one read and no lookup item.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.domain.inbound import Contract, Rejected, RejectReason, decode, received_time
from aftercare.domain.inbound import Rejected as ResultRejected
from aftercare.domain.parking import DIAGNOSTICS, receive, record_dead_letter
from aftercare.domain.ports import ConcurrentUpdate, ParkedStore
from aftercare.domain.rules import FaultCatalog
from aftercare.domain.tickets import (
    Resolution,
    StatusChange,
    Ticket,
    TicketStatus,
    TimelineEntry,
    plan_status_change,
)
from aftercare.models.diagnostics import (
    DiagnosticRecord,
    DiagnosticState,
    Outcome,
    Purpose,
)
from aftercare.models.payloads import (
    MAX_DIAGNOSTICS_PAYLOAD_BYTES,
    DiagnosticsCancel,
    DiagnosticsEnvelope,
    DiagnosticsRequest,
    DiagnosticsResult,
    DiagnosticStatus,
)

# `ResultRejected` is the inbound pipeline's `Rejected`, under the name callers know.
__all__ = ["ResultRejected"]
DIAGNOSTICS_RESULT = Contract(DiagnosticsResult, MAX_DIAGNOSTICS_PAYLOAD_BYTES, noun="a result")
REMEDY_ROUTINES = frozenset({"reset_component"})
VERIFY_ROUTINE = "self_test"
ONSITE_FLAG = "needs_onsite_dispatch"
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


class PublishFailed(Exception):
    """The request could not be handed to the device's command topic."""


class DiagnosticNotFound(LookupError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"diagnostic {request_id} not found")
        self.request_id = request_id


# --------------------------------------------------------------------------- records


class TicketPatch(BaseModel):
    """Diagnostics-owned ticket fields (flags, suggested parts), guarded by the ticket's status
    and its diagnostics revision so concurrent answers cannot overwrite each other."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    expected_status: TicketStatus
    expected_rev: int
    flags: list[str]
    suggested_parts: list[dict[str, Any]]
    updated_at: AwareDatetime


class CompletionPlan(BaseModel):
    """Everything one answer (or timeout) changes, applied in one transaction."""

    model_config = ConfigDict(frozen=True)

    record: DiagnosticRecord
    entries: list[TimelineEntry]
    status_change: StatusChange | None = None
    ticket_patch: TicketPatch | None = None
    follow_up: DiagnosticRecord | None = None


class DiagnosticContext(BaseModel):
    """A ticket and one of its diagnostics as read together, with the ticket's diagnostics
    revision (0 when never patched)."""

    model_config = ConfigDict(frozen=True)

    ticket: Ticket | None
    record: DiagnosticRecord | None
    rev: int = 0


class ResultOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str | None = None
    ticket_id: str | None = None
    thing: str
    outcome: Outcome | None = None
    latency_ms: int | None = None
    reason: RejectReason | None = None
    detail: str | None = None
    follow_up: str | None = None

    @property
    def rejected(self) -> bool:
        return self.reason is not None


# --------------------------------------------------------------------------- ports


class DiagnosticsStore(Protocol):
    """Diagnostics records beside their tickets (see the TicketsTable comment)."""

    def load_ticket(self, ticket_id: str) -> Ticket:
        """The ticket record alone. Raises TicketNotFound."""
        ...

    def load(self, ticket_id: str, request_id: str) -> DiagnosticContext:
        """The ticket and one of its diagnostics, in one read."""
        ...

    def create(self, record: DiagnosticRecord, entry: TimelineEntry) -> bool:
        """Store a new pending request with its timeline entry, in one write that also checks
        the ticket is still active; False if it already exists. Raises TicketNotActive (with
        the ticket's current status) when the ticket is not active any more."""
        ...

    def cancel(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        """Store a request as `cancelled` with its timeline entry. Raises ConcurrentUpdate if it
        is no longer pending (answered, timed out or cancelled meanwhile)."""
        ...

    def fail(self, record: DiagnosticRecord, entry: TimelineEntry) -> None:
        """Mark a pending request `failed` (it never reached the device)."""
        ...

    def complete(self, plan: CompletionPlan) -> None:
        """Apply a plan atomically. Raises ConcurrentUpdate if the request is no longer pending
        or the ticket moved on since it was read."""
        ...

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(ticket_id, request_id) of pending requests whose deadline passed before `now`."""
        ...

    def for_ticket(self, ticket_id: str) -> list[DiagnosticRecord]: ...


class CommandPublisher(Protocol):
    """Hands a request to the device's command topic (QoS 1). Raises PublishFailed."""

    def publish(self, thing: str, request: DiagnosticsRequest) -> None: ...


class CancelPublisher(Protocol):
    """Tells a device not to run (or answer) a request (QoS 1). Raises PublishFailed."""

    def publish_cancel(self, thing: str, cancel: DiagnosticsCancel) -> None: ...


# --------------------------------------------------------------------------- ids and params


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


def _ms_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


# --------------------------------------------------------------------------- starting


def start_diagnostic(
    store: DiagnosticsStore,
    publisher: CommandPublisher,
    ticket: Ticket,
    *,
    routine: str,
    params: Mapping[str, Any] | None,
    timeout: timedelta,
    actor: str,
    purpose: Purpose,
    now: datetime,
    request_id: str | None = None,
) -> DiagnosticRecord:
    """Store a pending request and publish it to the ticket's device.

    A request id that already exists (a redelivered auto-diagnosis trigger) is published again
    while it is pending, and otherwise returned as it is. A failed publish marks an engineer's
    request `failed` and raises PublishFailed; an automatic one stays pending and raises, so
    the trigger is retried (or the sweeper times it out)."""
    if not ticket.active:
        raise TicketNotActive(ticket.ticket_id, ticket.status)
    record = DiagnosticRecord(
        request_id=request_id or new_request_id(ticket.ticket_id),
        ticket_id=ticket.ticket_id,
        thing=ticket.thing,
        routine=routine,
        params=dict(params) if params is not None else default_params(routine, ticket),
        purpose=purpose,
        requested_by=actor,
        requested_at=now,
        expires_at=now + timeout,
    )
    if not store.create(record, requested_entry(record)):
        existing = store.load(ticket.ticket_id, record.request_id).record
        if existing is None or existing.status is not DiagnosticState.PENDING:
            return existing or record
        record = existing
    _publish(store, publisher, record, now)
    return record


AUTO_ACTOR = "auto-diagnostics"


def auto_diagnose(
    store: DiagnosticsStore,
    publisher: CommandPublisher,
    ticket: Ticket,
    *,
    timeout: timedelta,
    now: datetime,
) -> DiagnosticRecord | None:
    """Run the catalog's routine on a newly opened ticket whose code is marked auto-diagnose.

    The request id derives from the ticket, so a redelivered trigger starts nothing new."""
    if not (ticket.auto_diagnose and ticket.routine and ticket.active):
        return None
    return start_diagnostic(
        store,
        publisher,
        ticket,
        routine=ticket.routine,
        params=None,
        timeout=timeout,
        actor=AUTO_ACTOR,
        purpose=Purpose.AUTO,
        now=now,
        request_id=derived_request_id(ticket.ticket_id, "auto"),
    )


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


def _publish(
    store: DiagnosticsStore, publisher: CommandPublisher, record: DiagnosticRecord, now: datetime
) -> None:
    try:
        publisher.publish(record.thing, record.request())
    except PublishFailed as exc:
        if record.purpose is Purpose.ENGINEER:
            entry = TimelineEntry(
                at=now,
                kind="diagnostics_failed",
                actor=SYSTEM_ACTOR,
                detail={"request_id": record.request_id, "reason": str(exc)},
            )
            store.fail(record.model_copy(update={"detail": str(exc)}), entry)
        raise


# --------------------------------------------------------------------------- answers


def decode_result(envelope: DiagnosticsEnvelope) -> DiagnosticsResult:
    """Validate one delivered payload against the DiagnosticsResult contract."""
    return decode(envelope.payload_b64, DIAGNOSTICS_RESULT)


def check_answer(
    record: DiagnosticRecord | None, request_id: str, thing: str, received_at: datetime
) -> DiagnosticRecord:
    """The pending record this answer settles, or Rejected saying why it settles none."""
    if record is None:
        raise Rejected(RejectReason.UNKNOWN_REQUEST, f"no diagnostics request {request_id}")
    if record.thing != thing:
        raise Rejected(
            RejectReason.THING_MISMATCH,
            f"request {request_id} was sent to {record.thing!r}, answered by {thing!r}",
        )
    if record.status is DiagnosticState.CANCELLED:
        raise Rejected(
            RejectReason.REQUEST_CANCELLED,
            f"request {request_id} was cancelled at {record.cancelled_at}: {record.detail}",
        )
    if record.status is DiagnosticState.TIMED_OUT or received_at > record.expires_at + RESULT_GRACE:
        raise Rejected(
            RejectReason.LATE_ANSWER,
            f"received {received_at.isoformat()}, deadline {record.expires_at.isoformat()}",
        )
    if record.status is not DiagnosticState.PENDING:
        raise Rejected(
            RejectReason.DUPLICATE_ANSWER, f"request {request_id} is already {record.status}"
        )
    return record


def handle_result(
    envelope: DiagnosticsEnvelope,
    *,
    store: DiagnosticsStore,
    publisher: CommandPublisher,
    catalog: FaultCatalog,
    now: datetime,
    verify_timeout: timedelta = DEFAULT_TIMEOUT,
) -> ResultOutcome:
    """Apply one answer: store it on its ticket with its consequences, or reject it.

    The answer's timeline entry is dated when IoT Core received it; what follows from it
    (status change, flags, verification request) is dated `now`."""
    received_at = received_time(envelope)
    try:
        result = decode_result(envelope)
        plan = _apply(
            envelope.thing,
            result,
            received_at,
            store=store,
            catalog=catalog,
            now=now,
            verify_timeout=verify_timeout,
        )
    except Rejected as exc:
        return ResultOutcome(thing=envelope.thing, reason=exc.reason, detail=exc.detail)
    follow_up = plan.follow_up
    if follow_up is not None:
        publisher.publish(follow_up.thing, follow_up.request())
    record = plan.record
    return ResultOutcome(
        request_id=record.request_id,
        ticket_id=record.ticket_id,
        thing=record.thing,
        outcome=record.outcome,
        latency_ms=record.latency_ms,
        follow_up=follow_up.request_id if follow_up else None,
    )


def _apply(
    thing: str,
    result: DiagnosticsResult,
    received_at: datetime,
    *,
    store: DiagnosticsStore,
    catalog: FaultCatalog,
    now: datetime,
    verify_timeout: timedelta,
) -> CompletionPlan:
    ticket_id = ticket_of(result.request_id)
    for attempt in range(MAX_ATTEMPTS):
        context = (
            store.load(ticket_id, result.request_id)
            if ticket_id
            else DiagnosticContext(ticket=None, record=None)
        )
        pending = check_answer(context.record, result.request_id, thing, received_at)
        if context.ticket is None:
            raise Rejected(RejectReason.UNKNOWN_REQUEST, f"no ticket {ticket_id}")
        if not context.ticket.active:
            # Its cancellation is on the way (the ticket's stream); the answer is as stale.
            raise Rejected(
                RejectReason.REQUEST_CANCELLED,
                f"ticket {context.ticket.ticket_id} is {context.ticket.status}",
            )
        plan = plan_completion(
            context.ticket,
            pending,
            result,
            received_at,
            catalog,
            rev=context.rev,
            now=max(now, received_at),
            verify_timeout=verify_timeout,
        )
        try:
            store.complete(plan)
        except ConcurrentUpdate:
            if attempt == MAX_ATTEMPTS - 1:
                raise
            continue
        return plan
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- planning


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
    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    flag_onsite: bool = False
    parts: list[dict[str, Any]] = Field(default_factory=list)
    resolve: bool = False
    verify: bool = False


def _decide(
    ticket: Ticket, record: DiagnosticRecord, result: DiagnosticsResult, catalog: FaultCatalog
) -> _Decision:
    if not ticket.active:
        return _Decision(outcome=Outcome.NO_ACTION)
    parts = suspected_parts(result.findings, ticket, catalog)
    if record.purpose is Purpose.VERIFY or record.routine in REMEDY_ROUTINES:
        return _remedy_decision(ticket, record, result, parts)
    if result.status is DiagnosticStatus.FAILED and _adds_parts(ticket, parts):
        return _Decision(outcome=Outcome.PARTS_SUGGESTED, parts=parts)
    return _Decision(outcome=Outcome.NO_ACTION)


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
    known = {p.get("sku") for p in ticket.suggested_parts}
    return any(p["sku"] not in known for p in parts)


def merged_parts(
    current: Sequence[Mapping[str, Any]], found: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    known = {p.get("sku") for p in current}
    return [dict(p) for p in current] + [dict(p) for p in found if p["sku"] not in known]


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
    if decision.resolve:
        change = plan_status_change(
            ticket,
            TicketStatus.RESOLVED,
            actor=SYSTEM_ACTOR,
            reason=f"remote fix verified by diagnostics {settled.request_id}",
            now=now,
            resolution=Resolution.REMOTE,
        )
    patch = _patch(ticket, decision, now, rev)
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


# --------------------------------------------------------------------------- timeouts


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
    decision = _Decision(outcome=Outcome.TIMED_OUT, flag_onsite=ticket.active)
    return _plan_for(
        ticket, settled, decision, entries=[entry], now=now, rev=rev, verify_timeout=DEFAULT_TIMEOUT
    )


def sweep_timeouts(store: DiagnosticsStore, now: datetime, limit: int = 100) -> int:
    """Time out every pending request past its deadline (plus the answer grace)."""
    swept = 0
    for ticket_id, request_id in store.due(now - RESULT_GRACE, limit):
        context = store.load(ticket_id, request_id)
        ticket, record = context.ticket, context.record
        if ticket is None or record is None or record.status is not DiagnosticState.PENDING:
            continue
        if now <= record.expires_at + RESULT_GRACE:
            continue
        try:
            store.complete(plan_timeout(ticket, record, now, rev=context.rev))
        except ConcurrentUpdate:
            continue  # answered or changed meanwhile; the next sweep looks again
        swept += 1
    return swept


# --------------------------------------------------------------------------- cancelling


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


def cancel_pending(
    store: DiagnosticsStore, publisher: CancelPublisher, ticket: Ticket, now: datetime
) -> list[DiagnosticRecord]:
    """Cancel every pending request of a resolved or cancelled ticket and tell its device.

    The device hears first, then the record is settled: a failure in between is retried (the
    request is still pending) and a repeated cancel is harmless to the device. A request that is
    answered meanwhile stays answered (its answer is parked, the ticket being inactive)."""
    if ticket.active:
        return []
    cancelled = []
    for record in store.for_ticket(ticket.ticket_id):
        if record.status is not DiagnosticState.PENDING:
            continue
        settled, entry = plan_cancel(record, ticket, now)
        publisher.publish_cancel(
            record.thing,
            DiagnosticsCancel(
                request_id=record.request_id,
                reason=entry.detail["reason"],
                cancelled_at=now,
                expires_at=record.expires_at,
            ),
        )
        try:
            store.cancel(settled, entry)
        except ConcurrentUpdate:
            continue
        cancelled.append(settled)
    return cancelled


# --------------------------------------------------------------------------- queue messages


def handle_result_message(
    body: str,
    message_id: str,
    *,
    store: DiagnosticsStore,
    publisher: CommandPublisher,
    parked: ParkedStore,
    catalog: FaultCatalog,
    now: datetime,
    verify_timeout: timedelta = DEFAULT_TIMEOUT,
) -> ResultOutcome:
    """Apply one diagnostics-queue message; park it (source `diagnostics`) when rejected.

    Storage and publish errors propagate, so the message is retried and finally dead-lettered."""

    def apply(envelope: DiagnosticsEnvelope) -> ResultOutcome:
        return handle_result(
            envelope,
            store=store,
            publisher=publisher,
            catalog=catalog,
            now=now,
            verify_timeout=verify_timeout,
        )

    def refuse(reason: RejectReason, detail: str) -> ResultOutcome:
        return ResultOutcome(thing="", reason=reason, detail=detail)

    return receive(
        body, message_id, DIAGNOSTICS, apply=apply, refuse=refuse, parked=parked, now=now
    )


def park_dead_letter(
    body: str, message_id: str, receive_count: int, sent_at: datetime, parked: ParkedStore
) -> str:
    """Park a dead-lettered diagnostics message (rule error, or retries exhausted)."""
    return record_dead_letter(
        body, message_id, receive_count, sent_at, parked, source=DIAGNOSTICS.dead_letter_source
    )

"""Device answers: decoded by the inbound pipeline, checked against the request they answer,
applied with what follows from them, or parked with the reason (see the `diagnostics` module).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from aftercare.domain.diagnostics_plans import plan_completion
from aftercare.domain.diagnostics_records import (
    DEFAULT_TIMEOUT,
    MAX_ATTEMPTS,
    RESULT_GRACE,
    CompletionPlan,
    DiagnosticContext,
    ticket_of,
)
from aftercare.domain.inbound import Contract, Rejected, RejectReason, decode, received_time
from aftercare.domain.parking import DIAGNOSTICS, receive, record_dead_letter
from aftercare.domain.ports import CommandPublisher, ConcurrentUpdate, DiagnosticsStore, ParkedStore
from aftercare.domain.rules import FaultCatalog
from aftercare.models.diagnostics import DiagnosticRecord, DiagnosticState, Outcome
from aftercare.models.payloads import (
    MAX_DIAGNOSTICS_PAYLOAD_BYTES,
    DiagnosticsEnvelope,
    DiagnosticsResult,
)

DIAGNOSTICS_RESULT = Contract(DiagnosticsResult, MAX_DIAGNOSTICS_PAYLOAD_BYTES, noun="a result")


class ResultOutcome(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

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

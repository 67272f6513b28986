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

Modules: this one starts, sweeps and cancels requests; the rest live in
`diagnostics_records` (records, errors, ids), `diagnostics_plans` (what an answer, a timeout
or a cancellation changes) and `diagnostics_answers` (device answers in). The ports are in
`aftercare.domain.ports`.

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

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aftercare.domain.diagnostics_plans import (
    plan_cancel,
    plan_timeout,
)
from aftercare.domain.diagnostics_records import (
    RESULT_GRACE,
    SYSTEM_ACTOR,
    PublishFailed,
    TicketNotActive,
    default_params,
    derived_request_id,
    new_request_id,
    requested_entry,
)
from aftercare.domain.ports import (
    CancelPublisher,
    CommandPublisher,
    ConcurrentUpdate,
    DiagnosticsStore,
)
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import (
    DiagnosticRecord,
    DiagnosticState,
    Purpose,
)
from aftercare.models.payloads import DiagnosticsCancel
from aftercare.models.tickets import TimelineEntry
from aftercare.models.visits import VisitRecord


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
    visit: VisitRecord | None = None,
    resend_pending: bool = True,
) -> DiagnosticRecord:
    """Store a pending request and publish it to the ticket's device.

    A request id that already exists (a redelivered auto-diagnosis trigger) is published again
    while it is pending (unless `resend_pending` is off: a redelivered campaign page must not
    send twice), and otherwise returned as it is. A failed publish marks an engineer's
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
        visit=visit,
    )
    if not store.create(record, requested_entry(record)):
        existing = store.load(ticket.ticket_id, record.request_id).record
        pending = existing is not None and existing.status is DiagnosticState.PENDING
        if existing is None or not (pending and resend_pending):
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


def _publish(
    store: DiagnosticsStore, publisher: CommandPublisher, record: DiagnosticRecord, now: datetime
) -> None:
    try:
        publisher.publish(record.thing, record.request())
    except PublishFailed as exc:
        if record.purpose in (Purpose.ENGINEER, Purpose.GUIDE_STEP):  # a person asked: say so
            entry = TimelineEntry(
                at=now,
                kind="diagnostics_failed",
                actor=SYSTEM_ACTOR,
                detail={"request_id": record.request_id, "reason": str(exc)},
            )
            store.fail(record.model_copy(update={"detail": str(exc)}), entry)
        raise


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

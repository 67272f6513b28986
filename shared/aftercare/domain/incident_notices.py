"""A fleet incident's customer messages: one per (incident, customer), counted on the incident
(split from `aftercare.domain.notifier`, which calls it for the incident kinds)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aftercare.domain.notifications import EventKind, Notification, Outcome, is_critical
from aftercare.models.tickets import TicketSummary

if TYPE_CHECKING:
    from aftercare.domain.notifier import Notifier


def incident_notice(
    notifier: Notifier, kind: EventKind, facts: TicketSummary, now: datetime, *, opened: bool
) -> Outcome:
    """A fleet incident's message: once per (incident, customer), however many of the
    customer's devices are its children (keyed by the incident, the customer as the occasion).
    Counts on the incident what it sent, and what it saved against the per-ticket path (a
    ticket-opened message for a child opened while the incident was open; a resolved message
    and a survey for a child it fixed)."""
    incident_id = str(facts.incident_id)
    notification = Notification(
        ticket_id=incident_id,
        kind=kind,
        occasion=facts.customer_id,
        customer_id=facts.customer_id,
        critical=is_critical(kind, facts),
        facts=facts,
        created_at=now,
        due_at=now,
    )
    created = notifier.store.create(notification, lease_until=now + notifier.policy.lease)
    per_ticket = 2 if kind is EventKind.FIX_AVAILABLE else int(opened)
    if notifier.incidents is not None:
        notifier.incidents.count_messages(
            incident_id, facts.thing, sent=int(created), saved=max(0, per_ticket - created)
        )
    if not created:
        return Outcome(ticket_id=facts.ticket_id, kind=kind, result="duplicate", detail=incident_id)
    return notifier.deliver(notification, now)

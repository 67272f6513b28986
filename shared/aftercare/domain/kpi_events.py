"""Lifecycle events from the stream: what one committed change says about a ticket, a visit or
a booking, as facts to merge (`aftercare.domain.kpis`).

The adapter reads each stream record's key and hands over plain images (attribute types
removed) with the kind of item they hold; this module never sees a table key.

    ticket record   opened (insert), first_response (first move out of `open`), resolved
                    (remote, on_site, self_service), status changes (backlog), repeat (a new
                    ticket naming an earlier one: that one's fix did not last)
    audit entry     sla_breached (an escalation step `mark_breached`), survey_sent,
                    survey_answered
    visit record    visit started / completed / could not complete / verified / failed /
                    repeated (first-time fix)
    booking         booked (and its changes: utilisation)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aftercare.models.kpis import BookingFacts, KpiDefinitions, KpiUpdate, TicketFacts, VisitFacts

OPEN = "open"
NOT_A_RESPONSE = frozenset({OPEN, "cancelled"})
STARTED_STATUSES = frozenset({"on_site", "completed", "cannot_complete"})
BREACH_ACTION = "mark_breached"


class ChangeKind(StrEnum):
    TICKET = "ticket"  # a ticket's record
    ENTRY = "entry"  # an audit timeline entry of a ticket
    VISIT = "visit"  # a visit record kept beside a ticket
    BOOKING = "booking"  # a booking on an engineer's calendar


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def ticket_dims(image: Mapping[str, Any], defs: KpiDefinitions) -> dict[str, str]:
    """The dimension values a ticket is counted under (a missing channel is `device`)."""
    return {
        "all": "all",
        "region": str(image.get("region") or "unknown"),
        "model": str(image.get("model") or "unknown"),
        "category": str(image.get("category") or "unknown"),
        "channel": str(image.get("channel") or defs.default_channel),
        "priority": str(image.get("priority") or "unknown"),
    }


def ticket_updates(
    record_id: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    defs: KpiDefinitions,
) -> list[KpiUpdate]:
    """A ticket record's change: its own facts, and a repeat's verdict on the earlier ticket."""
    if not new:
        return []
    ticket_id = str(new["ticket_id"])
    version = int(new.get("version", 1))
    visit = new.get("visit") if isinstance(new.get("visit"), Mapping) else None
    status = str(new["status"])
    responded = old is not None and old.get("status") == OPEN and status not in NOT_A_RESPONSE
    facts = TicketFacts(
        ticket_id=ticket_id,
        dims=ticket_dims(new, defs),
        dims_version=version,
        opened_at=_time(new.get("opened_at")),
        sla_response_due=_time(new.get("sla_response_due")),
        sla_resolution_due=_time(new.get("sla_resolution_due")),
        status=status,
        status_version=version,
        first_response_at=_time(new.get("updated_at")) if responded else None,
        resolved_at=_time(new.get("resolved_at")),
        resolution=new.get("resolution") if new.get("resolved_at") else None,
        resolved_by=str(visit["engineer_id"]) if visit and new.get("resolved_at") else None,
    )
    kind = _ticket_kind(old, status, responded)
    updates = [KpiUpdate(event_id=f"{record_id}#{ticket_id}", kind=kind, facts=facts)]
    repeat_of = new.get("repeat_of")
    if old is None and repeat_of:
        updates.append(
            KpiUpdate(
                event_id=f"{record_id}#{repeat_of}",
                kind="repeat",
                facts=TicketFacts(ticket_id=str(repeat_of), repeated=True),
            )
        )
    return updates


def _ticket_kind(old: Mapping[str, Any] | None, status: str, responded: bool) -> str:
    if old is None:
        return "opened"
    if responded:
        return "first_response"
    if status == "resolved" and old.get("status") != "resolved":
        return "resolved"
    return "changed"


def entry_updates(record_id: str, ticket_id: str, entry: Mapping[str, Any]) -> list[KpiUpdate]:
    """An audit entry that is a lifecycle event: an SLA breach, a survey sent or answered."""
    kind = entry.get("kind")
    raw = entry.get("detail")
    detail: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    at = _time(entry.get("at"))
    facts: TicketFacts | None = None
    event = str(kind)
    if kind == "sla_escalated" and detail.get("action") == BREACH_ACTION and at:
        target = str(detail.get("step", "")).split("@", 1)[0] or "unknown"
        facts = TicketFacts(ticket_id=ticket_id, breaches={target: at})
        event = "sla_breached"
    elif kind == "survey_answered" and detail.get("rating") is not None:
        facts = TicketFacts(
            ticket_id=ticket_id, survey_answered_at=at, survey_rating=int(detail["rating"])
        )
    elif kind == "notification" and (detail.get("notification"), detail.get("status")) == (
        "survey",
        "sent",
    ):
        facts = TicketFacts(ticket_id=ticket_id, survey_sent_at=at)
        event = "survey_sent"
    if facts is None:
        return []
    return [KpiUpdate(event_id=f"{record_id}#{ticket_id}", kind=event, facts=facts)]


def visit_updates(record_id: str, visit: Mapping[str, Any] | None) -> list[KpiUpdate]:
    """A visit record's change (its outcome: first-time fix; on site: started)."""
    if not visit:
        return []
    at = _time(visit.get("start")) or _time(visit.get("updated_at"))
    facts = VisitFacts(
        booking_id=str(visit["booking_id"]),
        engineer_id=visit.get("engineer_id"),
        partner=visit.get("partner"),
        model=visit.get("model"),
        day=at.astimezone(UTC).date() if at else None,
        outcome=visit.get("outcome"),
        started=visit.get("status") in STARTED_STATUSES,
    )
    kind = f"visit_{visit.get('outcome')}"
    return [KpiUpdate(event_id=f"{record_id}#{facts.booking_id}", kind=kind, facts=facts)]


def booking_updates(record_id: str, booking: Mapping[str, Any] | None) -> list[KpiUpdate]:
    """A booking's change (booked time on the engineer's calendar)."""
    if not booking:
        return []
    facts = BookingFacts(
        booking_id=str(booking["booking_id"]),
        version=int(booking.get("version", 1)),
        status=booking.get("status"),
        engineer_id=booking.get("engineer_id"),
        partner=booking.get("partner"),
        region=booking.get("region"),
        start=_time(booking.get("start")),
        end=_time(booking.get("end")),
    )
    kind = "booked" if facts.version == 1 else f"booking_{facts.status}"
    return [KpiUpdate(event_id=f"{record_id}#{facts.booking_id}", kind=kind, facts=facts)]

"""Proactive customer notifications: which ticket changes are news, and how the news travels.

Flow (see README "Notifications"):

1. The tickets' change stream delivers a ticket before and after a change (the stream adapter
   turns the images into `Ticket`s); `events_for_change` names the events in it
   (`ticket_opened`, `ticket_classified`: support gave an unclassified ticket its code,
   `remote_resolved`, `onsite_visit_needed`, `resolved`). An occurrence
   update changes neither status nor flags, so it is no event.
2. Each (ticket, event kind) becomes one `Notification` item, created with a conditional put:
   however often the stream redelivers, the second put fails and nothing is sent twice. Visit
   messages (booked, reminder, on the way) are keyed by their occasion too (booking + start),
   so a second visit or a reschedule of the same ticket is news again.
3. Routing: critical events go now. Others wait for the end of the customer's quiet hours, or,
   when the customer heard from us within the digest window, join the customer's bundle; the
   first event of a quiet period goes out at once (leading edge) and opens the window.
4. Sending tries the customer's channels in their order until one accepts; every attempt
   (sent, failed with reason, deferred, suppressed and why) is recorded with the ticket.
5. A scheduled sweep sends what is due: bundles (one digest, or the single message when the
   bundle holds one), surveys after resolution, retries, and anything a crash left pending.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from aftercare.domain.preferences import Channel
from aftercare.domain.tickets import Ticket
from aftercare.models.booking_states import BookingStatus
from aftercare.models.severity import Severity
from aftercare.models.tickets import Resolution, TicketStatus, TicketSummary
from aftercare.models.visits import VisitSummary

ACTIVE_FOR_DIAGNOSTICS = frozenset({TicketStatus.OPEN, TicketStatus.DIAGNOSING})


class EventKind(StrEnum):
    TICKET_OPENED = "ticket_opened"
    TICKET_CLASSIFIED = "ticket_classified"  # support gave an unclassified ticket its code
    REMOTE_RESOLVED = "remote_resolved"
    ONSITE_VISIT_NEEDED = "onsite_visit_needed"
    RESOLVED = "resolved"
    SURVEY = "survey"
    ENGINEER_EN_ROUTE = "engineer_en_route"  # the visit's engineer set off
    BOOKING_CONFIRMED = "booking_confirmed"  # a visit was booked (or rescheduled)
    VISIT_REMINDER = "visit_reminder"  # the day before the visit
    MAINTENANCE_ADVICE = "maintenance_advice"  # a maintenance rule fired on the telemetry
    KNOWN_ISSUE = "known_issue"  # the ticket is a child of a fleet incident (once per customer)
    FIX_AVAILABLE = "fix_available"  # the fleet incident's fix cleared it (once per customer)


DIGEST_KIND = "digest"
# Messages about one visit: keyed by the visit's occasion, not only by (ticket, kind).
VISIT_KINDS = frozenset(
    {EventKind.BOOKING_CONFIRMED, EventKind.VISIT_REMINDER, EventKind.ENGINEER_EN_ROUTE}
)
# Bad news about a critical fault cannot wait for the morning; good news and surveys can.
URGENT_KINDS = frozenset(
    {
        EventKind.TICKET_OPENED,
        EventKind.TICKET_CLASSIFIED,
        EventKind.ONSITE_VISIT_NEEDED,
        EventKind.KNOWN_ISSUE,
    }
)
# Messages that introduce the ticket's fault to the customer: what we are doing about it (the
# diagnostics running) and, for a self-serviceable code, the guide.
OPENING_KINDS = frozenset({EventKind.TICKET_OPENED, EventKind.TICKET_CLASSIFIED})
# Fleet incident messages: one per (incident, customer), however many of the customer's
# devices are children (keyed by the incident, the customer as the occasion).
INCIDENT_KINDS = frozenset({EventKind.KNOWN_ISSUE, EventKind.FIX_AVAILABLE})


class NotificationState(StrEnum):
    PENDING = "pending"  # created, not yet routed or sent (or waiting for a retry)
    DEFERRED = "deferred"  # waiting in the customer's bundle for the end of quiet hours
    DIGESTED = "digested"  # waiting in the customer's bundle for the digest
    SENT = "sent"
    FAILED = "failed"  # every channel failed for good
    SUPPRESSED = "suppressed"  # nothing to send it to (no customer record, no channel)


class AttemptStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    DEFERRED = "deferred"
    SUPPRESSED = "suppressed"


# --------------------------------------------------------------------------- ticket events


def events_for_change(old: Ticket | None, new: Ticket | None) -> list[EventKind]:
    """The customer-visible events in one change of a ticket (`old` is None when it opens).

    The stream adapter gives the ticket before and after; any other item of the tickets
    table, and a deleted ticket, arrives as `new=None` and is no event."""
    if new is None:
        return []
    if old is None:
        return [EventKind.KNOWN_ISSUE if new.incident_id else EventKind.TICKET_OPENED]
    events: list[EventKind] = []
    if old.unclassified and not new.unclassified and new.active:
        events.append(EventKind.TICKET_CLASSIFIED)
    if new.incident_id and not old.incident_id:  # linked to an incident opened after it
        events.append(EventKind.KNOWN_ISSUE)
    if new.needs_onsite_dispatch and not old.needs_onsite_dispatch:
        events.append(EventKind.ONSITE_VISIT_NEEDED)
    if _visit_status(new) is BookingStatus.EN_ROUTE and _visit_status(old) is not (
        BookingStatus.EN_ROUTE
    ):
        events.append(EventKind.ENGINEER_EN_ROUTE)
    if new.status is TicketStatus.RESOLVED and old.status is not TicketStatus.RESOLVED:
        events.append(_resolution_event(new.resolution))
    return events


def _resolution_event(resolution: Resolution | None) -> EventKind:
    if resolution is Resolution.FLEET_FIX:
        return EventKind.FIX_AVAILABLE
    return EventKind.REMOTE_RESOLVED if resolution is Resolution.REMOTE else EventKind.RESOLVED


REMINDER_LEAD = timedelta(days=1)


def _visit_status(ticket: Ticket) -> BookingStatus | None:
    return ticket.visit.status if ticket.visit else None


# News that is worthless later goes now, whatever the severity (never held for a digest).
TIME_BOUND_KINDS = frozenset({EventKind.ENGINEER_EN_ROUTE})


def is_critical(kind: EventKind, facts: TicketSummary) -> bool:
    if kind in TIME_BOUND_KINDS:
        return True
    return kind in URGENT_KINDS and facts.severity is Severity.CRITICAL


# --------------------------------------------------------------------------- records


def visit_occasion(visit: VisitSummary) -> str:
    """Which visit a visit message is about: the booking and its start. A second booking of
    the same ticket, or a reschedule, is a new occasion (a new message); a redelivered stream
    record is the same one (absorbed)."""
    start = visit.start.astimezone(UTC).isoformat() if visit.start else ""
    return f"{visit.booking_id}@{start}"


class NotificationRef(BaseModel):
    """One notification's identity: (ticket, kind), and for visit messages the occasion."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    kind: EventKind
    occasion: str = ""

    def token(self) -> str:
        head = f"{self.ticket_id}|{self.kind.value}"
        return f"{head}|{self.occasion}" if self.occasion else head

    @classmethod
    def parse(cls, token: str) -> NotificationRef:
        ticket_id, kind, *occasion = token.split("|", 2)
        return cls(ticket_id=ticket_id, kind=EventKind(kind), occasion="".join(occasion))


class Notification(BaseModel):
    """One (ticket, event kind[, occasion]): the dedup marker, its routing state and what to
    say."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    kind: EventKind
    occasion: str = ""  # visit messages: `<booking_id>@<start>` (see `visit_occasion`)
    customer_id: str
    critical: bool
    facts: TicketSummary  # the ticket at the event
    created_at: AwareDatetime
    due_at: AwareDatetime
    state: NotificationState = NotificationState.PENDING
    tries: int = 0
    message_id: str | None = None

    @property
    def ref(self) -> NotificationRef:
        return NotificationRef(ticket_id=self.ticket_id, kind=self.kind, occasion=self.occasion)


class Bundle(BaseModel):
    """A customer's waiting messages (quiet hours, digest window), sent together when due."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    customer_id: str
    members: list[NotificationRef]
    due_at: AwareDatetime
    tries: int = 0


class Survey(BaseModel):
    """A satisfaction survey for one resolved ticket; answered once, by the ticket's owner."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    survey_id: str
    ticket_id: str
    customer_id: str
    facts: TicketSummary  # the ticket at the event
    created_at: AwareDatetime
    due_at: AwareDatetime
    status: str = "scheduled"  # scheduled | sent | failed | answered
    tries: int = 0
    sent_at: AwareDatetime | None = None
    rating: int | None = None
    comment: str | None = None
    answered_at: AwareDatetime | None = None


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    channel: Channel | None
    status: AttemptStatus
    reason: str | None = None
    provider_id: str | None = None
    permanent: bool = True


class AttemptRecord(BaseModel):
    """One attempt as stored with a ticket (notification log and ticket timeline)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    customer_id: str
    kind: str
    channel: str | None
    language: str
    status: AttemptStatus
    reason: str | None = None
    at: AwareDatetime
    message_id: str
    digest_size: int = 0
    subject: str = ""
    body: str = ""
    provider_id: str | None = None
    from_fault_ms: int | None = None
    from_open_ms: int | None = None
    pricing_version: str | None = None
    customer_pays: Decimal | None = None
    in_warranty: bool | None = None


class Outcome(BaseModel):
    """What happened to one notification (returned by handlers, logged, counted)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    kind: str
    result: str  # sent|failed|deferred|digested|duplicate|suppressed|retry|scheduled
    channel: str | None = None
    detail: str | None = None
    language_fallback: str | None = None


# --------------------------------------------------------------------------- ports


class DeliveryFailed(Exception):
    """A channel did not accept a message. `permanent`: retrying the same address won't help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent

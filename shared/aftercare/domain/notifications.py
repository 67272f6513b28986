"""Proactive customer notifications: which ticket changes are news, and how the news travels.

Flow (see README "Notifications"):

1. The tickets' change stream delivers a META item's old and new image; `events_for_change`
   names the events in it (`ticket_opened`, `remote_resolved`, `onsite_visit_needed`,
   `resolved`). An occurrence update changes neither status nor flags, so it is no event.
2. Each (ticket, event kind) becomes one `Notification` item, created with a conditional put:
   however often the stream redelivers, the second put fails and nothing is sent twice.
3. Routing: critical events go now. Others wait for the end of the customer's quiet hours, or,
   when the customer heard from us within the digest window, join the customer's bundle; the
   first event of a quiet period goes out at once (leading edge) and opens the window.
4. Sending tries the customer's channels in their order until one accepts; every attempt
   (sent, failed with reason, deferred, suppressed and why) is recorded with the ticket.
5. A scheduled sweep sends what is due: bundles (one digest, or the single message when the
   bundle holds one), surveys after resolution, retries, and anything a crash left pending.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.domain.ports.notifications import ChannelSender
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.pricing import CostEstimate, PriceTable, RepairFacts, estimate
from aftercare.domain.templates import RenderedMessage, TemplateBook, fill, html_list, render
from aftercare.domain.tickets import TicketFlag

ONSITE_FLAG = TicketFlag.NEEDS_ONSITE_DISPATCH

ACTIVE_FOR_DIAGNOSTICS = frozenset({"open", "diagnosing"})


class EventKind(StrEnum):
    TICKET_OPENED = "ticket_opened"
    REMOTE_RESOLVED = "remote_resolved"
    ONSITE_VISIT_NEEDED = "onsite_visit_needed"
    RESOLVED = "resolved"
    SURVEY = "survey"


DIGEST_KIND = "digest"
# Bad news about a critical fault cannot wait for the morning; good news and surveys can.
URGENT_KINDS = frozenset({EventKind.TICKET_OPENED, EventKind.ONSITE_VISIT_NEEDED})


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


# --------------------------------------------------------------------------- ticket facts


class TicketFacts(BaseModel):
    """What a notification says about its ticket: a snapshot of the ticket at the event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ticket_id: str
    customer_id: str
    thing: str
    model: str
    fault_code: str
    title_en: str
    title_zh: str
    category: str
    region: str
    severity: str
    status: str
    in_warranty: bool
    remote_fixable: bool = False
    auto_diagnose: bool = False
    routine: str | None = None
    parts: list[dict[str, Any]] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    resolution: str | None = None
    resolved_at: AwareDatetime | None = None
    opened_at: AwareDatetime
    first_seen: AwareDatetime

    def title(self, language: str) -> str:
        return self.title_zh if language.startswith("zh") and self.title_zh else self.title_en

    def part_name(self, line: Mapping[str, Any], language: str) -> str:
        key = "name_zh" if language.startswith("zh") else "name_en"
        return str(line.get(key) or line.get("name_en") or line["sku"])


def is_ticket_record(image: Mapping[str, Any] | None) -> bool:
    """A ticket's META item (not an occurrence, timeline entry or invariant key)."""
    if not image:
        return False
    return str(image.get("pk", "")).startswith("TICKET#") and image.get("sk") == "META"


def events_for_change(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> list[EventKind]:
    """The customer-visible events in one change of a ticket's META item (old vs new image)."""
    if not is_ticket_record(new) or (old is not None and not is_ticket_record(old)):
        return []
    assert new is not None
    if old is None:
        return [EventKind.TICKET_OPENED]
    events: list[EventKind] = []
    if ONSITE_FLAG in (new.get("flags") or []) and ONSITE_FLAG not in (old.get("flags") or []):
        events.append(EventKind.ONSITE_VISIT_NEEDED)
    if new.get("status") == "resolved" and old.get("status") != "resolved":
        remote = new.get("resolution") == "remote"
        events.append(EventKind.REMOTE_RESOLVED if remote else EventKind.RESOLVED)
    return events


def is_critical(kind: EventKind, facts: TicketFacts) -> bool:
    return kind in URGENT_KINDS and facts.severity == "critical"


# --------------------------------------------------------------------------- records


class NotificationRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    ticket_id: str
    kind: EventKind

    def token(self) -> str:
        return f"{self.ticket_id}|{self.kind.value}"

    @classmethod
    def parse(cls, token: str) -> NotificationRef:
        ticket_id, _, kind = token.partition("|")
        return cls(ticket_id=ticket_id, kind=EventKind(kind))


class Notification(BaseModel):
    """One (ticket, event kind): the dedup marker, its routing state and what to say."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    kind: EventKind
    customer_id: str
    critical: bool
    facts: TicketFacts
    created_at: AwareDatetime
    due_at: AwareDatetime
    state: NotificationState = NotificationState.PENDING
    tries: int = 0
    message_id: str | None = None

    @property
    def ref(self) -> NotificationRef:
        return NotificationRef(ticket_id=self.ticket_id, kind=self.kind)


class Bundle(BaseModel):
    """A customer's waiting messages (quiet hours, digest window), sent together when due."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    members: list[NotificationRef]
    due_at: AwareDatetime
    tries: int = 0


class Survey(BaseModel):
    """A satisfaction survey for one resolved ticket; answered once, by the ticket's owner."""

    model_config = ConfigDict(frozen=True)

    survey_id: str
    ticket_id: str
    customer_id: str
    facts: TicketFacts
    created_at: AwareDatetime
    due_at: AwareDatetime
    status: str = "scheduled"  # scheduled | sent | failed | answered
    tries: int = 0
    sent_at: AwareDatetime | None = None
    rating: int | None = None
    comment: str | None = None
    answered_at: AwareDatetime | None = None


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: Channel | None
    status: AttemptStatus
    reason: str | None = None
    provider_id: str | None = None
    permanent: bool = True


class AttemptRecord(BaseModel):
    """One attempt as stored with a ticket (notification log and ticket timeline)."""

    model_config = ConfigDict(frozen=True)

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

    model_config = ConfigDict(frozen=True)

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


# --------------------------------------------------------------------------- composition


def ticket_values(
    kind: str,
    facts: TicketFacts,
    *,
    profile: NotificationProfile,
    book: TemplateBook,
    cost: CostEstimate,
    language: str,
) -> dict[str, Any]:
    """Template values for a ticket message (every kind draws from the same set)."""
    return {
        "customer_name": profile.name or profile.customer_id,
        "ticket_id": facts.ticket_id,
        "fault_title": facts.title(language),
        "fault_code": facts.fault_code,
        "model": facts.model,
        "thing": facts.thing,
        "actions": actions_text(facts, book, language, kind),
        "cost": cost_text(cost, book, language),
    }


def actions_text(
    facts: TicketFacts, book: TemplateBook, language: str, kind: str = EventKind.TICKET_OPENED
) -> str:
    """What we are already doing: parts held or on order, diagnostics running (on opening)."""
    sentences = []
    for status, fragment in (("held", "parts_held"), ("backordered", "parts_backordered")):
        lines = [p for p in facts.parts if p.get("status") == status]
        if lines:
            items = ", ".join(
                fill(
                    book.fragment("part_item", language),
                    {"qty": p["qty"], "name": facts.part_name(p, language)},
                    "text",
                )
                for p in lines
            )
            sentences.append(fill(book.fragment(fragment, language), {"parts": items}, "text"))
    opening = kind == EventKind.TICKET_OPENED
    if opening and facts.auto_diagnose and facts.status in ACTIVE_FOR_DIAGNOSTICS:
        sentences.append(book.fragment("diagnostics_running", language))
    if not sentences:
        sentences.append(book.fragment("engineer_reviewing", language))
    return " ".join(sentences)


def cost_text(cost: CostEstimate, book: TemplateBook, language: str) -> str:
    if cost.in_warranty:
        return book.fragment("cost_warranty", language)
    values = {
        "total": f"{cost.customer_pays:.2f}",
        "currency": cost.currency,
        "parts_cost": f"{cost.parts:.2f}",
        "labour_cost": f"{cost.labour:.2f}",
        "pricing_version": cost.pricing_version,
    }
    return fill(book.fragment("cost_estimate", language), values, "text")


def cost_of(facts: TicketFacts, prices: PriceTable) -> CostEstimate:
    return estimate(RepairFacts.model_validate(facts.model_dump()), prices)


@dataclass(frozen=True)
class Composer:
    """Renders messages for a profile from templates, fragments and the price table."""

    book: TemplateBook
    prices: PriceTable
    survey_link_base: str

    def single(
        self, kind: str, facts: TicketFacts, profile: NotificationProfile, **extra: Any
    ) -> RenderedMessage:
        language = profile.language
        cost = cost_of(facts, self.prices)
        values = ticket_values(
            kind, facts, profile=profile, book=self.book, cost=cost, language=language
        )
        return render(self.book, kind, language, {**values, **extra})

    def survey(self, survey: Survey, profile: NotificationProfile) -> RenderedMessage:
        link = f"{self.survey_link_base.rstrip('/')}/{survey.survey_id}"
        return self.single(
            EventKind.SURVEY, survey.facts, profile, survey_link=link, survey_code=survey.survey_id
        )

    def digest(
        self, members: Sequence[Notification], profile: NotificationProfile
    ) -> RenderedMessage:
        if len(members) == 1:
            return self.single(members[0].kind, members[0].facts, profile)
        language = profile.language
        lines = [self._line(n, language) for n in members]
        values = {
            "customer_name": profile.name or profile.customer_id,
            "count": len(members),
            "lines": "\n".join(f"- {line}" for line in lines),
            "lines_html": html_list(lines),
        }
        return render(self.book, DIGEST_KIND, language, values)

    def _line(self, n: Notification, language: str) -> str:
        values = {"ticket_id": n.ticket_id, "fault_title": n.facts.title(language)}
        return fill(self.book.fragment(f"line_{n.kind.value}", language), values, "text")


def body_for(channel: Channel | None, message: RenderedMessage) -> str:
    return message.text if channel in (Channel.EMAIL, None) else message.short


# --------------------------------------------------------------------------- sending


def send_via_channels(
    message: RenderedMessage,
    profile: NotificationProfile,
    senders: Mapping[Channel, ChannelSender],
    reference: str,
) -> list[Attempt]:
    """Try the customer's channels in order until one accepts; one Attempt per try."""
    if not profile.channels:
        return [Attempt(channel=None, status=AttemptStatus.SUPPRESSED, reason="no channel chosen")]
    attempts: list[Attempt] = []
    for channel in profile.channels:
        attempt = _try_channel(channel, message, profile, senders, reference)
        attempts.append(attempt)
        if attempt.status is AttemptStatus.SENT:
            break
    return attempts


def _try_channel(
    channel: Channel,
    message: RenderedMessage,
    profile: NotificationProfile,
    senders: Mapping[Channel, ChannelSender],
    reference: str,
) -> Attempt:
    address = profile.address(channel)
    sender = senders.get(channel)
    if address is None:
        return _failed(channel, f"no {channel.value} address on file", permanent=True)
    if sender is None:
        return _failed(channel, f"{channel.value} is not enabled in this deployment", True)
    try:
        provider_id = sender.send(address, message, reference=reference)
    except DeliveryFailed as exc:
        return _failed(channel, exc.reason, exc.permanent)
    return Attempt(channel=channel, status=AttemptStatus.SENT, provider_id=provider_id)


def _failed(channel: Channel, reason: str, permanent: bool) -> Attempt:
    return Attempt(channel=channel, status=AttemptStatus.FAILED, reason=reason, permanent=permanent)


def delivered(attempts: Sequence[Attempt]) -> bool:
    return any(a.status is AttemptStatus.SENT for a in attempts)


def retryable(attempts: Sequence[Attempt]) -> bool:
    return any(a.status is AttemptStatus.FAILED and not a.permanent for a in attempts)


def sent_channel(attempts: Sequence[Attempt]) -> str | None:
    sent = (a.channel for a in attempts if a.status is AttemptStatus.SENT)
    return next((channel.value for channel in sent if channel is not None), None)


def _ms(later: datetime, earlier: datetime) -> int:
    return max(0, int((later - earlier).total_seconds() * 1000))


def attempt_records(
    covered: Sequence[tuple[str, TicketFacts]],
    message: RenderedMessage,
    attempts: Sequence[Attempt],
    *,
    at: datetime,
    message_id: str,
    cost: CostEstimate | None = None,
) -> list[AttemptRecord]:
    """One record per (covered ticket event, attempt); latencies on the sent ones."""
    digest_size = len(covered) if len(covered) > 1 else 0
    records = []
    for kind, facts in covered:
        for attempt in attempts:
            sent = attempt.status is AttemptStatus.SENT
            records.append(
                AttemptRecord(
                    ticket_id=facts.ticket_id,
                    customer_id=facts.customer_id,
                    kind=kind,
                    channel=attempt.channel.value if attempt.channel else None,
                    language=message.language,
                    status=attempt.status,
                    reason=attempt.reason,
                    at=at,
                    message_id=message_id,
                    digest_size=digest_size,
                    subject=message.subject,
                    body=body_for(attempt.channel, message),
                    provider_id=attempt.provider_id,
                    from_fault_ms=_ms(at, facts.first_seen) if sent else None,
                    from_open_ms=_ms(at, facts.opened_at) if sent else None,
                    pricing_version=cost.pricing_version if cost else None,
                    customer_pays=cost.customer_pays if cost else None,
                    in_warranty=cost.in_warranty if cost else None,
                )
            )
    return records


def waiting_record(
    n: Notification, status: AttemptStatus, reason: str, at: datetime, language: str
) -> AttemptRecord:
    """The record of a notification that did not go out now (deferred, digested, suppressed)."""
    return AttemptRecord(
        ticket_id=n.ticket_id,
        customer_id=n.customer_id,
        kind=n.kind.value,
        channel=None,
        language=language,
        status=status,
        reason=reason,
        at=at,
        message_id=f"W-{uuid.uuid4().hex[:12]}",
    )


def new_message_id(prefix: str = "M") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def local_time_text(moment: datetime, profile: NotificationProfile) -> str:
    return f"{moment.astimezone(profile.zone):%Y-%m-%d %H:%M:%S} {profile.time_zone}"


def retry_delay(base: timedelta, tries: int) -> timedelta:
    return base * (2 ** min(tries, 6))

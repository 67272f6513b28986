"""How a message travels: the customer's channels in order, and the record of every attempt."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from aftercare.domain.composition import body_for
from aftercare.domain.notifications import (
    Attempt,
    AttemptRecord,
    AttemptStatus,
    DeliveryFailed,
    Notification,
)
from aftercare.domain.ports.notifications import ChannelSender
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.pricing import CostEstimate
from aftercare.domain.templates import RenderedMessage
from aftercare.models.tickets import TicketSummary


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
    covered: Sequence[tuple[str, TicketSummary]],
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

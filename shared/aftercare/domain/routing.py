"""Routing one notification: send now, hold for quiet hours or the digest, or suppress; and
sending it on the customer's channels with every attempt recorded.

The stream side and the scheduled sweep (`aftercare.domain.notifier`) both end here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aftercare.domain.composition import (
    Composer,
    cost_of,
)
from aftercare.domain.delivery import (
    attempt_records,
    delivered,
    local_time_text,
    new_message_id,
    retry_delay,
    retryable,
    send_via_channels,
    sent_channel,
    waiting_record,
)
from aftercare.domain.notifications import (
    AttemptStatus,
    Notification,
    NotificationState,
    Outcome,
)
from aftercare.domain.ports.incidents import IncidentMessages
from aftercare.domain.ports.notifications import ChannelSender, NotificationStore
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.templates import RenderedMessage

if TYPE_CHECKING:
    from aftercare.domain.notifier import NotifierPolicy


class Router:
    """Sends or holds one notification at a time, as the customer's profile says."""

    def __init__(
        self,
        store: NotificationStore,
        senders: Mapping[Channel, ChannelSender],
        composer: Composer,
        policy: NotifierPolicy,
        incidents: IncidentMessages | None = None,
    ) -> None:
        self.store = store
        self.senders = senders
        self.composer = composer
        self.policy = policy
        self.incidents = incidents  # where fleet incident messages are counted

    # ------------------------------------------------------------------ routing

    def deliver(self, n: Notification, now: datetime) -> Outcome:
        """Send now, or hold for quiet hours / the digest (see module docstring)."""
        profile = self.store.get_profile(n.customer_id)
        if profile is None:
            return self._suppress(n, f"no customer record {n.customer_id}", now)
        if n.critical:
            return self._send_one(n, profile, now)
        quiet_end = profile.quiet_until(now)
        if quiet_end is not None:
            reason = f"quiet hours until {local_time_text(quiet_end, profile)}"
            return self._hold(
                n,
                profile=profile,
                until=quiet_end,
                state=NotificationState.DEFERRED,
                reason=reason,
                now=now,
            )
        window_end = self.store.open_window(n.customer_id, now, now + self.policy.digest_window)
        if window_end is None:
            return self._send_one(n, profile, now)
        reason = f"combined into a digest due {local_time_text(window_end, profile)}"
        return self._hold(
            n,
            profile=profile,
            until=window_end,
            state=NotificationState.DIGESTED,
            reason=reason,
            now=now,
        )

    def _hold(
        self,
        n: Notification,
        *,
        profile: NotificationProfile,
        until: datetime,
        state: NotificationState,
        reason: str,
        now: datetime,
    ) -> Outcome:
        self.store.add_to_bundle(n.customer_id, n.ref, until)
        deferred = state is NotificationState.DEFERRED
        status = AttemptStatus.DEFERRED if deferred else AttemptStatus.SUPPRESSED
        record = waiting_record(n, status, reason, now, profile.language)
        self.store.record([record], settled=[settled(n, state)])
        return Outcome(ticket_id=n.ticket_id, kind=n.kind, result=state.value, detail=reason)

    def _suppress(self, n: Notification, reason: str, now: datetime) -> Outcome:
        record = waiting_record(n, AttemptStatus.SUPPRESSED, reason, now, "en")
        self.store.record([record], settled=[settled(n, NotificationState.SUPPRESSED)])
        return Outcome(ticket_id=n.ticket_id, kind=n.kind, result="suppressed", detail=reason)

    # ------------------------------------------------------------------ sending

    def _send_one(self, n: Notification, profile: NotificationProfile, now: datetime) -> Outcome:
        message = self.composer.single(n.kind, n.facts, profile)
        attempts = send_via_channels(message, profile, self.senders, n.ref.token())
        message_id = new_message_id()
        cost = cost_of(n.facts, self.composer.prices)
        records = attempt_records(
            [(n.kind.value, n.facts)], message, attempts, at=now, message_id=message_id, cost=cost
        )
        if delivered(attempts):
            after = settled(n, NotificationState.SENT, message_id=message_id)
            result, channel = "sent", sent_channel(attempts)
        elif retryable(attempts) and n.tries + 1 < self.policy.max_tries:
            retry_at = now + retry_delay(self.policy.retry_base, n.tries)
            after = settled(n, NotificationState.PENDING, retry_at=retry_at)
            result, channel = "retry", None
        else:
            after = settled(n, final_state(attempts))
            result, channel = after.state.value, None
        self.store.record(records, settled=[after])
        return self._outcome(n, result, message, channel)

    @staticmethod
    def _outcome(
        n: Notification, result: str, message: RenderedMessage, channel: str | None
    ) -> Outcome:
        return Outcome(
            ticket_id=n.ticket_id,
            kind=n.kind,
            result=result,
            channel=channel,
            language_fallback=message.requested_language if message.fallback else None,
        )


def settled(
    n: Notification,
    state: NotificationState,
    *,
    message_id: str | None = None,
    retry_at: datetime | None = None,
) -> Notification:
    """`n` as it is once decided: final, or pending again for a retry at `retry_at`."""
    update: dict[str, Any] = {"state": state}
    if message_id is not None:
        update["message_id"] = message_id
    if retry_at is not None:
        update |= {"state": NotificationState.PENDING, "due_at": retry_at, "tries": n.tries + 1}
    return n.model_copy(update=update)


def final_state(attempts: Sequence[Any]) -> NotificationState:
    if all(a.status is AttemptStatus.SUPPRESSED for a in attempts):
        return NotificationState.SUPPRESSED
    return NotificationState.FAILED

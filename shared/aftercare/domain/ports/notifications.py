"""Notification ports, one per role: channels, profiles, the ledger, bundles, due queues."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aftercare.domain.notifications import (
        AttemptRecord,
        Bundle,
        Notification,
        NotificationRef,
        Survey,
    )
    from aftercare.domain.preferences import NotificationProfile
    from aftercare.domain.templates import RenderedMessage


class ChannelSender(Protocol):
    """Hands one message to one provider (SES, SNS...) for one address."""

    def send(self, address: str, message: RenderedMessage, *, reference: str) -> str:
        """Returns the provider's message id; raises DeliveryFailed."""
        ...


class ProfileSource(Protocol):
    """The customers' notification profiles."""

    def get_profile(self, customer_id: str) -> NotificationProfile | None: ...

    def prefetch_profiles(self, customer_ids: Sequence[str]) -> None:
        """Read these profiles in one go; `get_profile` answers from them until the next call."""
        ...


class NotificationLedger(Protocol):
    """One item per (ticket, event kind[, occasion]), and the attempts that settle it."""

    def create(self, notification: Notification, lease_until: datetime) -> bool:
        """Create the (ticket, kind) item unless it exists (False then)."""
        ...

    def get_many(self, refs: Sequence[NotificationRef]) -> list[Notification]: ...

    def withdraw(self, ref: NotificationRef, *, reason: str) -> bool:
        """Settle a notification not sent yet as suppressed (`reason`), out of the due queue
        (a later sweep or bundle skips it); False when there is none or it already went."""
        ...

    def record(
        self, attempts: Sequence[AttemptRecord], settled: Sequence[Notification] = ()
    ) -> None:
        """Store attempts (notification log and each ticket's timeline) and the notifications
        they settle, as decided: final, or pending again (in the due queue) for a retry."""
        ...


class Bundles(Protocol):
    """A customer's digest window and the messages waiting in it."""

    def open_window(self, customer_id: str, now: datetime, until: datetime) -> datetime | None:
        """Open the customer's digest window unless one is open; None if opened, else its end."""
        ...

    def add_to_bundle(self, customer_id: str, ref: NotificationRef, due_at: datetime) -> None:
        """Add to the customer's bundle; the bundle is due at the earliest member's due time."""
        ...

    def finish_bundle(
        self,
        customer_id: str,
        sent: Sequence[NotificationRef],
        *,
        window_until: datetime | None,
        retry_at: datetime | None = None,
    ) -> None:
        """Remove `sent` from the bundle (reopening the window), or postpone it to `retry_at`."""
        ...


class DueQueues(Protocol):
    """What has come due, leased to one sender at a time."""

    def claim_due_notifications(self, now: datetime, lease_until: datetime) -> list[Notification]:
        """Pending notifications whose time has come (retries, crash leftovers), leased to us."""
        ...

    def claim_due_bundles(self, now: datetime, lease_until: datetime) -> list[Bundle]: ...

    def claim_due_surveys(self, now: datetime, lease_until: datetime) -> list[Survey]: ...

    def release(
        self,
        lease_until: datetime,
        *,
        notifications: Sequence[NotificationRef] = (),
        customers: Sequence[str] = (),
        surveys: Sequence[str] = (),
    ) -> None:
        """Give back claims this sender will not work on (notifications, customers' bundles,
        surveys), where the lease is still the one it took (`lease_until`), so the next sweep
        takes them at once."""
        ...


class SurveySchedule(Protocol):
    """Surveys after resolution: scheduled once, settled when sent."""

    def schedule_survey(self, survey: Survey) -> bool:
        """Create the ticket's survey unless it exists (False then)."""
        ...

    def settle_survey(
        self, survey_id: str, status: str, *, sent_at: datetime | None, retry_at: datetime | None
    ) -> None: ...


class NotificationStore(
    ProfileSource, NotificationLedger, Bundles, DueQueues, SurveySchedule, Protocol
):
    """Every role the Notifier plays on durable notification state; each write that guards an
    invariant is conditional."""

"""In-memory NotificationStore / SurveyStore and channel senders, with the adapter's invariants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftercare.domain.notifications import (
    AttemptRecord,
    Bundle,
    DeliveryFailed,
    Notification,
    NotificationRef,
    NotificationState,
    Survey,
)
from aftercare.domain.preferences import NotificationProfile
from aftercare.domain.surveys import AlreadyAnswered, Csat, FollowUp, SurveyAnswer
from aftercare.domain.templates import RenderedMessage
from aftercare.models.tickets import TicketSummary

from tests.fakes.tickets import a_ticket


def ticket_summary(at: datetime, ticket_id: str = "T-1", **overrides: Any) -> TicketSummary:
    """What a notification knows of a ticket: by default a fan stall on customer c-1's AC-HP
    (in warranty), opened at `at` (see `a_ticket`)."""
    return TicketSummary.of(a_ticket(at, ticket_id, **overrides))


WAITING = {NotificationState.PENDING, NotificationState.DEFERRED, NotificationState.DIGESTED}


@dataclass
class Due:
    due_at: datetime
    lease_until: datetime | None = None


@dataclass
class FakeBundle:
    members: set[str] = field(default_factory=set)
    window_until: datetime | None = None
    due: Due | None = None
    tries: int = 0


class FakeNotificationStore:
    def __init__(self) -> None:
        self.profiles: dict[str, NotificationProfile] = {}
        self.notifications: dict[str, Notification] = {}
        self.due: dict[str, Due] = {}
        self.bundles: dict[str, FakeBundle] = {}
        self.surveys: dict[str, Survey] = {}
        self.survey_due: dict[str, Due] = {}
        self.attempts: list[AttemptRecord] = []
        self.followups: list[FollowUp] = []
        self.csat_counts = Csat()

    # profiles / notifications
    def get_profile(self, customer_id: str) -> NotificationProfile | None:
        return self.profiles.get(customer_id)

    def create(self, notification: Notification, lease_until: datetime) -> bool:
        token = notification.ref.token()
        if token in self.notifications:
            return False
        self.notifications[token] = notification
        self.due[token] = Due(notification.due_at, lease_until)
        return True

    def withdraw(self, ref: NotificationRef, *, reason: str) -> bool:
        found = self.notifications.get(ref.token())
        if found is None or found.state not in WAITING:
            return False
        self.notifications[ref.token()] = found.model_copy(
            update={"state": NotificationState.SUPPRESSED}
        )
        self.due.pop(ref.token(), None)
        return True

    def get_many(self, refs: Sequence[NotificationRef]) -> list[Notification]:
        return [self.notifications[r.token()] for r in refs if r.token() in self.notifications]

    # bundles
    def open_window(self, customer_id: str, now: datetime, until: datetime) -> datetime | None:
        bundle = self.bundles.setdefault(customer_id, FakeBundle())
        if bundle.window_until is not None and bundle.window_until > now:
            return bundle.window_until
        bundle.window_until = until
        return None

    def add_to_bundle(self, customer_id: str, ref: NotificationRef, due_at: datetime) -> None:
        bundle = self.bundles.setdefault(customer_id, FakeBundle())
        bundle.members.add(ref.token())
        if bundle.due is None or bundle.due.due_at > due_at:
            bundle.due = Due(due_at)

    def finish_bundle(
        self,
        customer_id: str,
        sent: Sequence[NotificationRef],
        *,
        window_until: datetime | None,
        retry_at: datetime | None = None,
    ) -> None:
        bundle = self.bundles[customer_id]
        if retry_at is not None:
            bundle.due = Due(retry_at)
            bundle.tries += 1
            return
        bundle.members -= {r.token() for r in sent}
        bundle.tries = 0
        if window_until is not None:
            bundle.window_until = window_until
        bundle.due = Due(window_until) if bundle.members and window_until else None

    # due queues
    @staticmethod
    def _ready(due: Due | None, now: datetime) -> bool:
        if due is None or due.due_at > now:
            return False
        return due.lease_until is None or due.lease_until <= now

    def claim_due_notifications(self, now: datetime, lease_until: datetime) -> list[Notification]:
        ready = [t for t, d in self.due.items() if self._ready(d, now)]
        for token in ready:
            self.due[token].lease_until = lease_until
        return [self.notifications[t] for t in ready if self.notifications[t].state in WAITING]

    def claim_due_bundles(self, now: datetime, lease_until: datetime) -> list[Bundle]:
        claimed = []
        for customer_id, bundle in self.bundles.items():
            if self._ready(bundle.due, now):
                assert bundle.due is not None
                bundle.due.lease_until = lease_until
                claimed.append(
                    Bundle(
                        customer_id=customer_id,
                        members=[NotificationRef.parse(t) for t in sorted(bundle.members)],
                        due_at=bundle.due.due_at,
                        tries=bundle.tries,
                    )
                )
        return claimed

    def claim_due_surveys(self, now: datetime, lease_until: datetime) -> list[Survey]:
        ready = [s for s, d in self.survey_due.items() if self._ready(d, now)]
        for survey_id in ready:
            self.survey_due[survey_id].lease_until = lease_until
        return [self.surveys[s] for s in ready]

    def release(
        self,
        lease_until: datetime,
        *,
        notifications: Sequence[NotificationRef] = (),
        customers: Sequence[str] = (),
        surveys: Sequence[str] = (),
    ) -> None:
        dues = [
            *(self.due.get(r.token()) for r in notifications),
            *(self.bundles[c].due if c in self.bundles else None for c in customers),
            *(self.survey_due.get(s) for s in surveys),
        ]
        for due in dues:
            if due is not None and due.lease_until == lease_until:
                due.lease_until = None
        self.released = [*getattr(self, "released", []), *notifications, *customers, *surveys]

    # attempts
    def record(
        self, attempts: Sequence[AttemptRecord], settled: Sequence[Notification] = ()
    ) -> None:
        self.attempts.extend(attempts)
        for n in settled:
            token = n.ref.token()
            self.notifications[token] = n
            if n.state is NotificationState.PENDING:
                self.due[token] = Due(n.due_at)
            else:
                self.due.pop(token, None)

    def prefetch_profiles(self, customer_ids: Sequence[str]) -> None:
        self.prefetched = list(customer_ids)

    # surveys
    def schedule_survey(self, survey: Survey) -> bool:
        if survey.survey_id in self.surveys:
            return False
        self.surveys[survey.survey_id] = survey
        self.survey_due[survey.survey_id] = Due(survey.due_at)
        return True

    def settle_survey(
        self, survey_id: str, status: str, *, sent_at: datetime | None, retry_at: datetime | None
    ) -> None:
        survey = self.surveys[survey_id]
        update: dict[str, Any] = {"status": status}
        if sent_at:
            update["sent_at"] = sent_at
        if retry_at is not None:
            update |= {"tries": survey.tries + 1, "due_at": retry_at}
            self.survey_due[survey_id] = Due(retry_at)
        else:
            self.survey_due.pop(survey_id, None)
        self.surveys[survey_id] = survey.model_copy(update=update)

    def get_survey(self, survey_id: str) -> Survey | None:
        return self.surveys.get(survey_id)

    def answer(
        self, survey: Survey, answer: SurveyAnswer, at: datetime, follow_up: FollowUp | None
    ) -> Survey:
        stored = self.surveys[survey.survey_id]
        if stored.rating is not None or stored.customer_id != survey.customer_id:
            raise AlreadyAnswered(survey.survey_id)
        answered = stored.model_copy(
            update={
                "rating": answer.rating,
                "comment": answer.comment,
                "answered_at": at,
                "status": "answered",
            }
        )
        self.surveys[survey.survey_id] = answered
        ratings = dict(self.csat_counts.ratings)
        ratings[str(answer.rating)] = ratings.get(str(answer.rating), 0) + 1
        self.csat_counts = Csat(
            answered=self.csat_counts.answered + 1,
            satisfied=self.csat_counts.satisfied + (answer.rating >= 4),
            ratings=ratings,
        )
        if follow_up is not None:
            self.followups.append(follow_up)
        return answered

    def csat(self) -> Csat:
        return self.csat_counts

    def follow_ups(self, limit: int) -> list[FollowUp]:
        return sorted(self.followups, key=lambda f: f.created_at, reverse=True)[:limit]

    # helpers for assertions
    def sent(self, kind: str | None = None) -> list[AttemptRecord]:
        return [
            a
            for a in self.attempts
            if a.status.value == "sent" and (kind is None or a.kind == kind)
        ]


@dataclass
class Delivery:
    address: str
    message: RenderedMessage
    reference: str


class RecordingSender:
    """A channel that accepts everything (or fails as told) and remembers what it got."""

    def __init__(self, fail: str | None = None, *, permanent: bool = True) -> None:
        self.fail = fail
        self.permanent = permanent
        self.deliveries: list[Delivery] = []

    def send(self, address: str, message: RenderedMessage, *, reference: str) -> str:
        if self.fail:
            raise DeliveryFailed(self.fail, permanent=self.permanent)
        self.deliveries.append(Delivery(address, message, reference))
        return f"provider-{len(self.deliveries)}"

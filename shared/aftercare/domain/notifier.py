"""Notification use cases: react to a ticket change, and send what has come due.

See `aftercare.domain.notifications` for the flow and the records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aftercare.domain.budget import Budget
from aftercare.domain.composition import (
    cost_of,
)
from aftercare.domain.delivery import (
    attempt_records,
    delivered,
    new_message_id,
    retry_delay,
    retryable,
    send_via_channels,
    sent_channel,
)
from aftercare.domain.incident_notices import incident_notice
from aftercare.domain.notifications import (
    INCIDENT_KINDS,
    REMINDER_LEAD,
    VISIT_KINDS,
    AttemptRecord,
    Bundle,
    EventKind,
    Notification,
    NotificationRef,
    NotificationState,
    Outcome,
    Survey,
    events_for_change,
    is_critical,
    visit_occasion,
)
from aftercare.domain.routing import Router, final_state, settled
from aftercare.domain.surveys import survey_id_for
from aftercare.domain.templates import RenderedMessage
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketSummary
from aftercare.models.visits import VisitSummary

RESOLUTION_KINDS = frozenset({EventKind.REMOTE_RESOLVED, EventKind.RESOLVED})
WAITING_STATES = frozenset(
    {NotificationState.PENDING, NotificationState.DEFERRED, NotificationState.DIGESTED}
)


@dataclass(frozen=True)
class NotifierPolicy:
    digest_window: timedelta
    survey_delay: timedelta
    lease: timedelta = timedelta(seconds=60)
    # A sweep starts no new item after this share of the lease: the item in hand must be
    # settled while the lease is still ours, or another sweep could send it again.
    lease_use: float = 0.75
    retry_base: timedelta = timedelta(seconds=30)
    max_tries: int = 5


class Notifier(Router):
    """Turns ticket events into messages on the customer's channels, exactly as routed."""

    # ------------------------------------------------------------------ stream side

    def on_ticket_change(
        self, old: Ticket | None, new: Ticket | None, now: datetime
    ) -> list[Outcome]:
        """Notify the events in one change of a ticket (nothing for occurrences)."""
        kinds = events_for_change(old, new)
        if new is None or not kinds:
            return []
        facts = TicketSummary.of(new)
        outcomes = [
            incident_notice(self, kind, facts, now, opened=old is None)
            if kind in INCIDENT_KINDS
            else self.notify(kind, facts, now, occasion=occasion_of(kind, new))
            for kind in kinds
        ]
        if RESOLUTION_KINDS & set(kinds):
            outcomes.append(self.schedule_survey(facts, now))
        return outcomes

    def on_visit_booked(
        self,
        visit: Mapping[str, Any],
        ticket: Ticket,
        now: datetime,
        replaced: Mapping[str, Any] | None = None,
    ) -> list[Outcome]:
        """A booked visit: confirm it now, and queue the reminder for the day before (the
        scheduler sends it when due; quiet hours and the digest apply as to any message).

        Each message is keyed by the visit's occasion (booking + start), so a reschedule or a
        second visit is confirmed and reminded again. `replaced` (a reschedule: the old
        booking and start) has its reminder withdrawn: its window no longer exists."""
        summary = VisitSummary.model_validate(visit)
        occasion = visit_occasion(summary)
        facts = TicketSummary.of(ticket.model_copy(update={"visit": summary}))
        outcomes = []
        if replaced is not None:
            outcomes.append(self.withdraw_reminder(facts.ticket_id, replaced))
        outcomes.append(self.notify(EventKind.BOOKING_CONFIRMED, facts, now, occasion=occasion))
        remind_at = datetime.fromisoformat(str(visit["start"])) - REMINDER_LEAD
        if remind_at > now:
            reminder = Notification(
                ticket_id=facts.ticket_id,
                kind=EventKind.VISIT_REMINDER,
                occasion=occasion,
                customer_id=facts.customer_id,
                critical=False,
                facts=facts,
                created_at=now,
                due_at=remind_at,
            )
            created = self.store.create(reminder, lease_until=now)
            outcomes.append(
                Outcome(
                    ticket_id=facts.ticket_id,
                    kind=EventKind.VISIT_REMINDER,
                    result="scheduled" if created else "duplicate",
                )
            )
        return outcomes

    def withdraw_reminder(self, ticket_id: str, visit: Mapping[str, Any]) -> Outcome:
        """The reminder of a visit whose window is gone (rescheduled, cancelled) is not sent."""
        occasion = visit_occasion(VisitSummary.model_validate(visit))
        ref = NotificationRef(ticket_id=ticket_id, kind=EventKind.VISIT_REMINDER, occasion=occasion)
        withdrawn = self.store.withdraw(ref, reason="visit window no longer exists")
        return Outcome(
            ticket_id=ticket_id,
            kind=EventKind.VISIT_REMINDER,
            result="withdrawn" if withdrawn else "nothing_to_withdraw",
            detail=occasion,
        )

    def prefetch(self, tickets: Iterable[Ticket | None]) -> None:
        """Read the profiles a batch of ticket changes will need, in one go."""
        ids = {t.customer_id for t in tickets if t is not None and t.customer_id}
        self.store.prefetch_profiles(sorted(ids))

    def notify(
        self, kind: EventKind, facts: TicketSummary, now: datetime, *, occasion: str = ""
    ) -> Outcome:
        notification = Notification(
            ticket_id=facts.ticket_id,
            kind=kind,
            occasion=occasion,
            customer_id=facts.customer_id,
            critical=is_critical(kind, facts),
            facts=facts,
            created_at=now,
            due_at=now,
        )
        if not self.store.create(notification, lease_until=now + self.policy.lease):
            return Outcome(ticket_id=facts.ticket_id, kind=kind, result="duplicate")
        return self.deliver(notification, now)

    def schedule_survey(self, facts: TicketSummary, now: datetime) -> Outcome:
        resolved_at = facts.resolved_at or now
        survey = Survey(
            survey_id=survey_id_for(facts.ticket_id),
            ticket_id=facts.ticket_id,
            customer_id=facts.customer_id,
            facts=facts,
            created_at=now,
            due_at=resolved_at + self.policy.survey_delay,
        )
        created = self.store.schedule_survey(survey)
        result = "scheduled" if created else "duplicate"
        return Outcome(ticket_id=facts.ticket_id, kind=EventKind.SURVEY, result=result)

    # ------------------------------------------------------------------ scheduled side

    def run_due(self, now: datetime, budget: Budget | None = None) -> list[Outcome]:
        """Send what has come due (left-over events, bundles, surveys) while `budget` lasts.

        Each queue's due items are claimed (leased) first; when the budget runs out the claims
        not worked on are released, so the next sweep takes them at once: nothing is lost, and
        nothing is sent twice (a claim is only worked on while its lease is live)."""
        lease_until = now + self.policy.lease
        budget = (budget or Budget.unlimited()).within(self.policy.lease * self.policy.lease_use)
        store = self.store
        queues: list[tuple[Callable[[], Sequence[Any]], Work, GiveBack]] = [
            (
                lambda: store.claim_due_notifications(now, lease_until),
                lambda n: [self.deliver(n, now)],
                lambda rest: store.release(lease_until, notifications=[n.ref for n in rest]),
            ),
            (
                lambda: store.claim_due_bundles(now, lease_until),
                lambda b: self.send_bundle(b, now),
                lambda rest: store.release(lease_until, customers=[b.customer_id for b in rest]),
            ),
            (
                lambda: store.claim_due_surveys(now, lease_until),
                lambda s: [self.send_survey(s, now)],
                lambda rest: store.release(lease_until, surveys=[s.survey_id for s in rest]),
            ),
        ]
        outcomes: list[Outcome] = []
        for claim, work, give_back in queues:
            if not budget.has_time():
                break
            outcomes += work_through(claim(), work, give_back, budget)
        return outcomes

    def send_bundle(self, bundle: Bundle, now: datetime) -> list[Outcome]:
        """One digest (or the single message) for everything in a customer's bundle."""
        profile = self.store.get_profile(bundle.customer_id)
        members = [m for m in self.store.get_many(bundle.members) if m.state in WAITING_STATES]
        if profile is None or not members:
            self.store.finish_bundle(bundle.customer_id, bundle.members, window_until=None)
            return [self._suppress(m, "no customer record", now) for m in members]
        quiet_end = profile.quiet_until(now)
        if quiet_end is not None:
            self.store.finish_bundle(bundle.customer_id, [], window_until=None, retry_at=quiet_end)
            return []
        message = self.composer.digest(members, profile)
        attempts = send_via_channels(message, profile, self.senders, bundle.customer_id)
        message_id = new_message_id("D" if len(members) > 1 else "M")
        cost = cost_of(members[0].facts, self.composer.prices) if len(members) == 1 else None
        covered = [(m.kind.value, m.facts) for m in members]
        records = attempt_records(
            covered, message, attempts, at=now, message_id=message_id, cost=cost
        )
        return self._settle_bundle(
            bundle,
            members=members,
            attempts=attempts,
            records=records,
            message=message,
            message_id=message_id,
            now=now,
        )

    def _settle_bundle(
        self,
        bundle: Bundle,
        *,
        members: Sequence[Notification],
        attempts: Sequence[Any],
        records: Sequence[AttemptRecord],
        message: RenderedMessage,
        message_id: str,
        now: datetime,
    ) -> list[Outcome]:
        refs = [m.ref for m in members]
        if delivered(attempts):
            sent = [settled(m, NotificationState.SENT, message_id=message_id) for m in members]
            self.store.record(records, settled=sent)
            window_until = now + self.policy.digest_window
            self.store.finish_bundle(bundle.customer_id, refs, window_until=window_until)
            channel = sent_channel(attempts)
            return [self._outcome(m, "sent", message, channel) for m in members]
        if retryable(attempts) and bundle.tries + 1 < self.policy.max_tries:
            retry_at = now + retry_delay(self.policy.retry_base, bundle.tries)
            self.store.record(records)
            self.store.finish_bundle(bundle.customer_id, [], window_until=None, retry_at=retry_at)
            return [self._outcome(m, "retry", message, None) for m in members]
        state = final_state(attempts)
        self.store.record(records, settled=[settled(m, state) for m in members])
        self.store.finish_bundle(bundle.customer_id, refs, window_until=None)
        return [self._outcome(m, state.value, message, None) for m in members]

    def send_survey(self, survey: Survey, now: datetime) -> Outcome:
        profile = self.store.get_profile(survey.customer_id)
        if profile is None:
            self.store.settle_survey(survey.survey_id, "failed", sent_at=None, retry_at=None)
            return Outcome(ticket_id=survey.ticket_id, kind="survey", result="suppressed")
        quiet_end = profile.quiet_until(now)
        if quiet_end is not None:
            self.store.settle_survey(
                survey.survey_id, "scheduled", sent_at=None, retry_at=quiet_end
            )
            return Outcome(ticket_id=survey.ticket_id, kind="survey", result="deferred")
        message = self.composer.survey(survey, profile)
        attempts = send_via_channels(message, profile, self.senders, survey.survey_id)
        self.store.record(
            attempt_records(
                [(EventKind.SURVEY.value, survey.facts)],
                message,
                attempts,
                at=now,
                message_id=new_message_id(),
            )
        )
        status, retry_at = "failed", None
        if delivered(attempts):
            status = "sent"
        elif retryable(attempts) and survey.tries + 1 < self.policy.max_tries:
            status, retry_at = "scheduled", now + retry_delay(self.policy.retry_base, survey.tries)
        sent_at = now if status == "sent" else None
        self.store.settle_survey(survey.survey_id, status, sent_at=sent_at, retry_at=retry_at)
        return Outcome(
            ticket_id=survey.ticket_id,
            kind="survey",
            result="retry" if retry_at else status,
            channel=sent_channel(attempts),
        )


def occasion_of(kind: EventKind, ticket: Ticket) -> str:
    """The visit a visit message of `ticket` is about ("" for the ticket's other news)."""
    if kind in VISIT_KINDS and ticket.visit is not None:
        return visit_occasion(ticket.visit)
    return ""


Work = Callable[[Any], list[Outcome]]
GiveBack = Callable[[Sequence[Any]], None]


def work_through(
    claimed: Sequence[Any], work: Work, give_back: GiveBack, budget: Budget
) -> list[Outcome]:
    """Work on claimed items one by one while the budget lasts; give back the rest."""
    outcomes: list[Outcome] = []
    for i, item in enumerate(claimed):
        if not budget.has_time():
            give_back(claimed[i:])
            break
        outcomes += work(item)
    return outcomes

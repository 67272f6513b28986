"""SLA escalation: steps at 50/75/100 % of the deadlines act once, stale steps are skipped."""

from __future__ import annotations

from datetime import timedelta

from aftercare.adapters.ticket_writes import classification_items
from aftercare.domain.escalation import (
    EscalationAction,
    first_tracker,
    load_escalation,
    plan_escalation,
    rescheduled_tracker,
    schedule,
    sweep_escalations,
)
from aftercare.domain.parts import ReservationPlan
from aftercare.domain.ports.records import ClassificationPlan, EscalationTracker
from aftercare.domain.tickets import Ticket
from aftercare.models.tickets import TicketFlag, TicketStatus

from tests.fakes.diagnostics import NOW, make_ticket

POLICY = load_escalation()


def ticket(status: TicketStatus = TicketStatus.OPEN) -> Ticket:
    # response due in 4 h, resolution in 24 h
    return make_ticket("PSU-OVERVOLT", status=status).model_copy(
        update={
            "sla_response_due": NOW + timedelta(hours=4),
            "sla_resolution_due": NOW + timedelta(hours=24),
        }
    )


class FakeEscalations:
    def __init__(self, *tickets: Ticket) -> None:
        self.tickets = {t.ticket_id: t for t in tickets}
        self.trackers: dict[str, EscalationTracker] = {}
        for t in tickets:
            tracker = first_tracker(t, POLICY)
            assert tracker is not None
            self.trackers[t.ticket_id] = tracker

    def due(self, now, limit):  # type: ignore[no-untyped-def]
        return [t for t in self.trackers.values() if t.next_at <= now][:limit]

    def ticket(self, ticket_id):  # type: ignore[no-untyped-def]
        return self.tickets.get(ticket_id)

    def apply(self, plan, tracker) -> bool:  # type: ignore[no-untyped-def]
        current = self.trackers.get(tracker.ticket_id)
        if current is None or current.index != plan.seen_index:
            return False
        if plan.next is None:
            del self.trackers[tracker.ticket_id]
        else:
            self.trackers[tracker.ticket_id] = plan.next
        if plan.flags is not None:
            self.tickets[tracker.ticket_id] = plan.ticket.model_copy(update={"flags": plan.flags})
        return True


class Pager:
    def __init__(self) -> None:
        self.pages: list[str] = []

    def page(self, message: str) -> None:
        self.pages.append(message)


def test_the_schedule_puts_each_step_at_its_share_of_its_deadline() -> None:
    due = {(s.step.target.value, s.step.at): s.due - NOW for s in schedule(ticket(), POLICY)}
    assert due[("response", 0.5)] == timedelta(hours=2)
    assert due[("response", 1.0)] == timedelta(hours=4)
    assert due[("resolution", 0.75)] == timedelta(hours=18)


def test_each_due_step_acts_exactly_once_however_often_the_sweeper_runs() -> None:
    # Given an open ticket nobody took up for 5 hours (all three response steps due)
    store, pager = FakeEscalations(ticket()), Pager()
    later = NOW + timedelta(hours=5)
    # When the sweeper runs three times
    runs = [sweep_escalations(store, pager, POLICY, later) for _ in range(3)]
    # Then the first run acted on the three response steps, the others on nothing
    (plan,) = runs[0]
    assert [s.action for s in plan.acted] == [
        EscalationAction.NOTIFY_DUTY_MANAGER,
        EscalationAction.REDISPATCH_WITH_PARTNERS,
        EscalationAction.MARK_BREACHED,
    ]
    assert runs[1] == [] and runs[2] == []
    assert len(pager.pages) == 1
    flags = set(store.tickets[plan.ticket.ticket_id].flags)
    assert {
        TicketFlag.PARTNERS_ALLOWED,
        TicketFlag.SLA_BREACHED,
        TicketFlag.NEEDS_ONSITE_DISPATCH,
    } <= flags
    assert plan.dispatch_reason and "partners allowed" in plan.dispatch_reason


def test_two_sweepers_with_the_same_read_act_once() -> None:
    store = FakeEscalations(ticket())
    tracker = store.trackers[next(iter(store.trackers))]
    plan = plan_escalation(ticket(), tracker, POLICY, NOW + timedelta(hours=3))
    assert store.apply(plan, tracker) is True
    assert store.apply(plan, tracker) is False


def test_response_steps_are_stale_once_the_ticket_left_open() -> None:
    # Given a ticket taken up (scheduled) before its response steps fell due
    taken = ticket(TicketStatus.SCHEDULED)
    tracker = first_tracker(ticket(), POLICY)
    assert tracker is not None
    # When the sweeper looks after the response deadline
    plan = plan_escalation(taken, tracker, POLICY, NOW + timedelta(hours=5))
    # Then the response steps are skipped, nothing acts, the resolution steps stay scheduled
    assert plan.acted == [] and len(plan.skipped) == 3 and plan.pages == []
    assert plan.next is not None and plan.next.next_at == NOW + timedelta(hours=12)


def test_a_resolved_ticket_ends_its_schedule() -> None:
    tracker = first_tracker(ticket(), POLICY)
    assert tracker is not None
    plan = plan_escalation(ticket(TicketStatus.RESOLVED), tracker, POLICY, NOW + timedelta(days=2))
    assert plan.acted == [] and plan.next is None


def test_nothing_is_due_before_the_first_step() -> None:
    store, pager = FakeEscalations(ticket()), Pager()
    assert sweep_escalations(store, pager, POLICY, NOW + timedelta(hours=1)) == []


def classification(escalation: EscalationTracker | None) -> ClassificationPlan:
    before = ticket()
    after = before.model_copy(update={"version": before.version + 1})
    return ClassificationPlan(
        ticket=before,
        classified=after,
        timeline=[],
        reservation=ReservationPlan(lines=[], deltas=[]),
        escalation=escalation,
    )


def test_a_classification_writes_the_moved_schedule_on_the_ticket_in_its_transaction() -> None:
    # Given a classification whose new SLA has a next step
    tracker = first_tracker(ticket(), POLICY)
    assert tracker is not None
    # When its transaction is built
    update = classification_items("T", classification(tracker))[0].request["Update"]
    # Then the ticket's own guarded update sets the tracker's attributes (the index entry moves)
    assert "esc_next_at = :esc_next_at" in update["UpdateExpression"]
    assert update["ExpressionAttributeValues"][":esc_next_at"] == {"N": str(tracker.next_epoch)}
    assert update["ExpressionAttributeValues"][":esc_bucket"] == {"S": tracker.bucket}
    assert "#version = :expected" in update["ConditionExpression"]
    # And with no step left under the new SLA, it takes the ticket out of the index
    done = classification_items("T", classification(None))[0].request["Update"]
    assert done["UpdateExpression"].endswith("REMOVE esc_index, esc_bucket, esc_next_at")


def test_no_step_left_under_the_new_sla_means_no_tracker() -> None:
    # Given a ticket reclassified after every step of the new schedule came due
    before, after = ticket(), ticket()
    late = NOW + timedelta(days=2)
    # Then nothing is left to schedule
    assert rescheduled_tracker(before, after, POLICY, late) is None

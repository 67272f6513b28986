"""The notifier with fakes: once per event, fallback, quiet hours, digests, surveys, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aftercare.adapters.aws import to_item
from aftercare.adapters.ticket_items import (
    booked_visit,
    replaced_visit,
    ticket_from_image,
    ticket_item,
)
from aftercare.domain.budget import Budget
from aftercare.domain.composition import (
    Composer,
)
from aftercare.domain.notifications import (
    AttemptStatus,
    EventKind,
)
from aftercare.domain.notifier import Notifier, NotifierPolicy
from aftercare.domain.preferences import Channel, NotificationProfile
from aftercare.domain.pricing import load_price_table
from aftercare.domain.surveys import (
    AlreadyAnswered,
    NotYourSurvey,
    SurveyAnswer,
    SurveyNotOpen,
    answer_survey,
    survey_id_for,
)
from aftercare.domain.templates import load_book

from tests.fakes.lambda_runtime import FakeContext, load_handler
from tests.fakes.notifications import FakeNotificationStore, RecordingSender
from tests.fakes.tickets import a_ticket

# 12:00 in Berlin: outside the default quiet hours
NOON = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=300)


def ticket(ticket_id: str = "T-1", **overrides: Any) -> dict[str, Any]:
    """The ticket's item as stored (and as the stream's images carry it)."""
    base: dict[str, Any] = {
        "region": "eu-central",
        "auto_diagnose": True,
        "first_seen": NOON - timedelta(seconds=3),
    }
    return ticket_item(a_ticket(NOON - timedelta(seconds=2), ticket_id, **(base | overrides)))


def resolved(image: dict[str, Any], how: str = "remote", at: datetime = NOON) -> dict[str, Any]:
    return image | {"status": "resolved", "resolution": how, "resolved_at": at.isoformat()}


class World:
    def __init__(self) -> None:
        self.store = FakeNotificationStore()
        self.email = RecordingSender()
        self.sms = RecordingSender()
        self.push = RecordingSender()
        self.notifier = Notifier(
            self.store,
            {Channel.EMAIL: self.email, Channel.SMS: self.sms, Channel.PUSH: self.push},
            Composer(load_book(), load_price_table(), "https://s.example.com/surveys"),
            NotifierPolicy(digest_window=WINDOW, survey_delay=timedelta(hours=24)),
        )
        self.customer()

    def customer(self, customer_id: str = "c-1", **overrides: Any) -> None:
        base: dict[str, Any] = {
            "customer_id": customer_id,
            "name": "Ada",
            "language": "en",
            "time_zone": "Europe/Berlin",
            "channels": ["email", "sms"],
            "contact": {"email": "ada@example.com", "phone": "+15550000001"},
            "quiet_hours": {"start": "22:00", "end": "07:00"},
        }
        self.store.profiles[customer_id] = NotificationProfile.model_validate(base | overrides)

    def change(self, old: dict[str, Any] | None, new: dict[str, Any], at: datetime = NOON) -> Any:
        """The notifier given one stream record's images, read as the handler reads them."""
        before, after = (ticket_from_image(to_item(i) if i else None) for i in (old, new))
        return self.notifier.on_ticket_change(before, after, at)


@pytest.fixture
def world() -> World:
    return World()


def test_a_new_ticket_is_told_once_on_the_first_channel(world: World) -> None:
    # Given a customer preferring email
    # When a ticket opens and the stream delivers the change three times
    outcomes = [world.change(None, ticket()) for _ in range(3)]
    # Then exactly one email went out; the redeliveries were absorbed
    assert [o[0].result for o in outcomes] == ["sent", "duplicate", "duplicate"]
    assert len(world.email.deliveries) == 1 and not world.sms.deliveries
    delivery = world.email.deliveries[0]
    assert delivery.address == "ada@example.com" and "T-1" in delivery.message.subject
    (record,) = world.store.attempts
    assert record.status is AttemptStatus.SENT and record.channel == "email"
    assert record.from_fault_ms == 3000 and record.from_open_ms == 2000


def test_occurrences_send_nothing(world: World) -> None:
    world.change(None, ticket())
    for n in range(2, 22):
        assert world.change(ticket(occurrences=n - 1), ticket(occurrences=n)) == []
    assert len(world.email.deliveries) == 1


def test_a_failing_channel_falls_back_to_the_next(world: World) -> None:
    # Given SMS first, and SNS refusing the customer's number
    world.customer(channels=["sms", "email"])
    world.sms.fail = "SNS InvalidParameter: Phone number does not meet the E164 format"
    # When a ticket opens
    (outcome,) = world.change(None, ticket())
    # Then email carried it, and both attempts are on record in order
    assert outcome.result == "sent" and outcome.channel == "email"
    assert [(a.channel, a.status.value) for a in world.store.attempts] == [
        ("sms", "failed"),
        ("email", "sent"),
    ]
    assert "E164" in str(world.store.attempts[0].reason)


def test_the_customers_language_is_used(world: World) -> None:
    world.customer(language="zh-CN")
    world.change(None, ticket())
    assert "散热风扇停转" in world.email.deliveries[0].message.subject


def test_quiet_hours_defer_a_minor_fault_until_the_window_opens(world: World) -> None:
    # Given 23:30 in Berlin
    night = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
    # When a minor fault opens a ticket
    (outcome,) = world.change(None, ticket(severity="minor"), at=night)
    # Then nothing is sent, the deferral is on record with its reason
    assert outcome.result == "deferred" and not world.email.deliveries
    assert world.store.attempts[0].status is AttemptStatus.DEFERRED
    assert "quiet hours until 2026-11-28 07:00:00 Europe/Berlin" in str(
        world.store.attempts[0].reason
    )
    # And the sweep before 07:00 sends nothing, the one after does
    assert world.notifier.run_due(night + timedelta(hours=1)) == []
    morning = datetime(2026, 11, 28, 6, 0, 1, tzinfo=UTC)
    (sent,) = world.notifier.run_due(morning)
    assert sent.result == "sent" and len(world.email.deliveries) == 1
    assert world.email.deliveries[0].message.kind == "ticket_opened"


def test_a_critical_fault_is_sent_even_in_quiet_hours(world: World) -> None:
    night = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
    (outcome,) = world.change(None, ticket(severity="critical"), at=night)
    assert outcome.result == "sent" and len(world.email.deliveries) == 1


def test_many_tickets_in_a_short_window_become_one_digest(world: World) -> None:
    # Given one customer whose devices open five tickets within a minute
    outcomes = [
        world.change(None, ticket(f"T-{n}"), at=NOON + timedelta(seconds=10 * n))[0]
        for n in range(5)
    ]
    # Then the first went out at once and the other four wait for the digest
    assert [o.result for o in outcomes] == ["sent"] + ["digested"] * 4
    assert len(world.email.deliveries) == 1
    # When the window has passed
    swept = world.notifier.run_due(NOON + WINDOW + timedelta(seconds=1))
    # Then one digest covered the four, and each ticket's record says so
    assert [o.result for o in swept] == ["sent"] * 4
    assert len(world.email.deliveries) == 2
    digest = world.email.deliveries[1].message
    assert digest.kind == "digest" and "4 updates" in digest.subject
    covered = {a.ticket_id for a in world.store.sent() if a.digest_size == 4}
    assert covered == {"T-1", "T-2", "T-3", "T-4"}


def test_after_the_window_a_new_ticket_goes_out_at_once(world: World) -> None:
    world.change(None, ticket("T-1"))
    later = NOON + WINDOW + timedelta(seconds=1)
    (outcome,) = world.change(None, ticket("T-2"), at=later)
    assert outcome.result == "sent"


def test_a_transient_failure_is_retried_by_the_sweep(world: World) -> None:
    world.customer(channels=["email"])
    world.email.fail, world.email.permanent = "SES Throttling: slow down", False
    (outcome,) = world.change(None, ticket())
    assert outcome.result == "retry"
    world.email.fail = None
    (retried,) = world.notifier.run_due(NOON + timedelta(minutes=5))
    assert retried.result == "sent" and len(world.email.deliveries) == 1


def test_every_channel_failing_for_good_is_recorded_as_failed(world: World) -> None:
    world.customer(channels=["sms"], contact={"phone": "0800 AFTERCARE"})
    world.sms.fail = "SNS InvalidParameter: not E.164"
    (outcome,) = world.change(None, ticket())
    assert outcome.result == "failed"
    assert world.notifier.run_due(NOON + timedelta(hours=1)) == []


def test_a_customer_without_channels_is_suppressed_with_a_reason(world: World) -> None:
    world.customer(channels=[])
    (outcome,) = world.change(None, ticket())
    assert outcome.result == "suppressed"
    assert world.store.attempts[0].reason == "no channel chosen"


def test_onsite_visit_needed_is_its_own_event(world: World) -> None:
    world.change(None, ticket())
    flagged = ticket(flags=["needs_onsite_dispatch"], status="diagnosing")
    later = NOON + WINDOW * 2
    (outcome,) = world.change(ticket(status="diagnosing"), flagged, at=later)
    assert outcome.kind == "onsite_visit_needed" and outcome.result == "sent"


# ------------------------------------------------------------------ satisfaction loop


def test_resolution_schedules_one_survey_sent_after_the_delay(world: World) -> None:
    # Given a ticket resolved remotely (stream redelivers the change)
    world.change(None, ticket())
    done = resolved(ticket(), at=NOON + timedelta(minutes=10))
    first = world.change(ticket(), done, at=NOON + timedelta(minutes=10))
    again = world.change(ticket(), done, at=NOON + timedelta(minutes=11))
    assert [o.result for o in first] == ["sent", "scheduled"]
    assert [o.result for o in again] == ["duplicate", "duplicate"]
    # When the sweep runs before and after the survey delay
    assert world.notifier.run_due(NOON + timedelta(hours=2)) == []
    (survey,) = world.notifier.run_due(NOON + timedelta(hours=24, minutes=11))
    # Then exactly one survey went out, with its code
    assert survey.result == "sent"
    survey_id = survey_id_for("T-1")
    assert survey_id in world.email.deliveries[-1].message.text
    assert world.store.surveys[survey_id].status == "sent"


def _sent_survey(world: World) -> str:
    world.change(None, ticket())
    world.change(ticket(), resolved(ticket()))
    world.notifier.run_due(NOON + timedelta(days=2))
    return survey_id_for("T-1")


def test_a_low_rating_opens_a_follow_up_and_counts_toward_csat(world: World) -> None:
    survey_id = _sent_survey(world)
    answer = SurveyAnswer(rating=2, comment="took too long")
    answered = answer_survey(world.store, survey_id, "c-1", answer, NOON + timedelta(days=3))
    assert answered.rating == 2
    (follow_up,) = world.store.followups
    assert follow_up.ticket_id == "T-1" and follow_up.comment == "took too long"
    assert world.store.csat().answered == 1 and world.store.csat().score == 0.0


def test_a_good_rating_opens_no_follow_up(world: World) -> None:
    survey_id = _sent_survey(world)
    answer_survey(world.store, survey_id, "c-1", SurveyAnswer(rating=5), NOON)
    assert world.store.followups == [] and world.store.csat().score == 1.0


def test_a_survey_is_answered_once_and_only_by_its_owner(world: World) -> None:
    survey_id = _sent_survey(world)
    with pytest.raises(NotYourSurvey):
        answer_survey(world.store, survey_id, "c-2", SurveyAnswer(rating=5), NOON)
    answer_survey(world.store, survey_id, "c-1", SurveyAnswer(rating=4), NOON)
    with pytest.raises(AlreadyAnswered):
        answer_survey(world.store, survey_id, "c-1", SurveyAnswer(rating=1), NOON)
    assert world.store.csat().answered == 1


def test_a_survey_not_sent_yet_cannot_be_answered(world: World) -> None:
    world.change(None, ticket())
    world.change(ticket(), resolved(ticket()))
    with pytest.raises(SurveyNotOpen):
        answer_survey(world.store, survey_id_for("T-1"), "c-1", SurveyAnswer(rating=5), NOON)


def test_survey_answers_are_validated() -> None:
    from pydantic import ValidationError

    for bad in ({"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": 3, "extra": 1}):
        with pytest.raises(ValidationError):
            SurveyAnswer.model_validate(bad)
    assert SurveyAnswer.model_validate({"rating": 3, "comment": " ok "}).comment == "ok"


def test_kinds_are_the_documented_ones() -> None:
    assert {k.value for k in EventKind} == {
        "ticket_opened",
        "ticket_classified",
        "remote_resolved",
        "onsite_visit_needed",
        "resolved",
        "survey",
        "engineer_en_route",
        "booking_confirmed",
        "visit_reminder",
        "maintenance_advice",
        "known_issue",
        "fix_available",
    }


# --------------------------------------------------------------------------- time budget


class Clock:
    """A monotonic clock that moves only when a message is sent (one second each)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowSender(RecordingSender):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def send(self, address: str, message: Any, *, reference: str) -> str:
        self.clock.now += 1.0
        return super().send(address, message, reference=reference)


def test_a_sweep_stops_when_its_budget_runs_out_and_the_next_one_finishes(world: World) -> None:
    # Given five resolved tickets whose surveys are all due, and a channel taking 1 s a message
    for n in range(5):
        world.change(None, ticket(f"T-{n}"))
        world.change(ticket(f"T-{n}"), resolved(ticket(f"T-{n}")))
    world.notifier.run_due(NOON + timedelta(hours=1))  # the digest of the news goes out
    clock = Clock()
    world.notifier.senders = {Channel.EMAIL: SlowSender(clock)}
    due = NOON + timedelta(days=2)
    # When a sweep has 4.5 s left, 1 s of which is its safety margin
    budget = Budget.from_remaining(timedelta(seconds=4.5), margin=timedelta(seconds=1), clock=clock)
    first = world.notifier.run_due(due, budget)
    # Then it sends four surveys, starts no fifth and gives that one back at once
    assert [o.result for o in first] == ["sent"] * 4 and not budget.has_time()
    (left,) = [s for s in world.store.surveys.values() if s.status == "scheduled"]
    assert world.store.survey_due[left.survey_id].lease_until is None
    # When the next sweep runs (a few seconds later, well inside the first one's lease)
    second = world.notifier.run_due(due + timedelta(seconds=5), Budget.unlimited(clock))
    # Then it sends exactly the one that was left: all five went out once each
    assert [o.result for o in second] == ["sent"]
    sent = [d.reference for d in world.notifier.senders[Channel.EMAIL].deliveries]  # type: ignore[attr-defined]
    assert sorted(sent) == sorted(survey_id_for(f"T-{n}") for n in range(5))


def test_a_sweep_starts_nothing_new_once_most_of_its_lease_is_used(world: World) -> None:
    # Given a due survey and a clock already past three quarters of the lease
    clock = Clock()
    world.change(None, ticket())
    world.change(ticket(), resolved(ticket()))
    budget = Budget.unlimited(clock)
    world.notifier.policy = NotifierPolicy(
        digest_window=WINDOW, survey_delay=timedelta(hours=24), lease=timedelta(seconds=0)
    )
    # When the sweep runs with a lease it cannot work inside
    assert world.notifier.run_due(NOON + timedelta(days=2), budget) == []
    # Then nothing was claimed, so nothing waits for a lease to run out
    assert all(d.lease_until is None for d in world.store.survey_due.values())


def test_the_customer_hears_once_that_the_engineer_is_on_the_way(world: World) -> None:
    # Given a ticket whose visit is booked for 09:00-11:00 Berlin time
    visit = {
        "booking_id": "B-1",
        "engineer_id": "E-ada",
        "status": "scheduled",
        "start": "2026-03-02T08:00:00+00:00",
        "end": "2026-03-02T10:00:00+00:00",
        "time_zone": "Europe/Berlin",
    }
    world.change(None, ticket())
    booked = ticket(status="scheduled", visit=visit)
    on_the_way = booked | {"visit": visit | {"status": "en_route"}}
    # When the engineer sets off and the stream delivers it twice
    first = world.change(booked, on_the_way)
    again = world.change(booked, on_the_way)
    # Then one message says so, with the window on the customer's clock
    assert [o.result for o in first] == ["sent"] and [o.result for o in again] == ["duplicate"]
    message = world.email.deliveries[-1].message
    assert "on the way" in message.subject and "2026-03-02 09:00-11:00" in message.text
    # And arriving on site is no news
    assert world.change(on_the_way, on_the_way | {"visit": visit | {"status": "on_site"}}) == []


def test_a_booked_visit_is_confirmed_once_and_reminded_the_day_before(world: World) -> None:
    # Given the calendar's audit entry of a visit booked two days ahead
    start = NOON + timedelta(days=2)
    entry = {
        "pk": "TICKET#T-1",
        "sk": f"EVT#{NOON.isoformat()}#00#abcd",
        "kind": "visit_booked",
        "detail": {
            "booking_id": "B-1",
            "engineer_id": "E-ada",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
    }
    visit = booked_visit(entry)
    assert visit is not None
    # When the notifier sees it (twice: the stream redelivers)
    booked = ticket_from_image(to_item(ticket()))
    assert booked is not None
    first = world.notifier.on_visit_booked(visit, booked, NOON)
    again = world.notifier.on_visit_booked(visit, booked, NOON)
    # Then the customer is told once, and one reminder waits for the day before
    assert [o.result for o in first] == ["sent", "scheduled"]
    assert [o.result for o in again] == ["duplicate", "duplicate"]
    assert "booked" in world.email.deliveries[-1].message.subject
    assert world.notifier.run_due(NOON + timedelta(hours=23)) == []
    sent = world.notifier.run_due(start - timedelta(hours=23))
    assert [(o.kind, o.result) for o in sent] == [("visit_reminder", "sent")]
    assert "Reminder" in world.email.deliveries[-1].message.subject


def visit_entry(kind: str, booking_id: str, start: datetime, **detail: Any) -> dict[str, Any]:
    """The calendar's audit entry of a visit on the ticket's timeline (as the stream has it)."""
    return {
        "pk": "TICKET#T-1",
        "sk": f"EVT#{NOON.isoformat()}#00#{booking_id}",
        "kind": kind,
        "detail": {
            "booking_id": booking_id,
            "engineer_id": "E-ada",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "time_zone": "Europe/Berlin",
            **detail,
        },
    }


def test_a_rescheduled_visit_is_confirmed_again_and_only_the_new_window_is_reminded(
    world: World,
) -> None:
    # Given a visit booked three days ahead, confirmed, its reminder queued
    booked_ticket = ticket_from_image(to_item(ticket()))
    assert booked_ticket is not None
    first_start = NOON + timedelta(days=3)
    first = booked_visit(visit_entry("visit_booked", "B-1", first_start))
    assert first is not None
    world.notifier.on_visit_booked(first, booked_ticket, NOON)
    # When the customer moves it a day later (same ticket: a new booking and window), and the
    # stream delivers that record twice
    new_start = first_start + timedelta(days=1)
    entry = visit_entry(
        "visit_rescheduled",
        "B-2",
        new_start,
        from_booking="B-1",
        from_start=first_start.isoformat(),
    )
    moved, old = booked_visit(entry), replaced_visit(entry)
    assert moved is not None and old is not None
    later = NOON + timedelta(minutes=10)
    outcomes = world.notifier.on_visit_booked(moved, booked_ticket, later, replaced=old)
    again = world.notifier.on_visit_booked(moved, booked_ticket, later, replaced=old)
    # Then the customer gets a second, distinct confirmation naming the new window, once
    assert [(o.kind, o.result) for o in outcomes] == [
        ("visit_reminder", "withdrawn"),
        ("booking_confirmed", "sent"),
        ("visit_reminder", "scheduled"),
    ]
    assert [o.result for o in again] == ["nothing_to_withdraw", "duplicate", "duplicate"]
    confirmations = [d.message for d in world.email.deliveries if "booked" in d.message.subject]
    assert len(confirmations) == 2
    assert confirmations[0].subject != confirmations[1].subject
    assert f"{new_start.astimezone(ZoneInfo('Europe/Berlin')):%Y-%m-%d}" in confirmations[1].subject
    # And when the old window's eve comes, no reminder; at the new one's, exactly one
    assert world.notifier.run_due(first_start - timedelta(hours=23)) == []
    sent = world.notifier.run_due(new_start - timedelta(hours=23))
    assert [(o.kind, o.result) for o in sent] == [("visit_reminder", "sent")]
    assert world.notifier.run_due(new_start - timedelta(hours=1)) == []


def test_a_cancelled_visits_reminder_is_withdrawn(world: World) -> None:
    booked_ticket = ticket_from_image(to_item(ticket()))
    assert booked_ticket is not None
    start = NOON + timedelta(days=3)
    visit = booked_visit(visit_entry("visit_booked", "B-1", start))
    assert visit is not None
    world.notifier.on_visit_booked(visit, booked_ticket, NOON)
    cancelled = replaced_visit(visit_entry("visit_cancelled", "B-1", start))
    assert cancelled is not None
    assert world.notifier.withdraw_reminder("T-1", cancelled).result == "withdrawn"
    assert world.notifier.run_due(start - timedelta(hours=23)) == []


def test_visit_messages_in_a_digest_each_get_their_line(world: World) -> None:
    # Given a customer who just heard from us (the digest window is open)
    world.change(None, ticket())
    booked_ticket = ticket_from_image(to_item(ticket()))
    assert booked_ticket is not None
    start = NOON + timedelta(hours=20)
    # When a visit is booked inside the window (not critical: it waits for the digest),
    # then the ticket's engineer sets off... and another ticket resolves
    visit = booked_visit(visit_entry("visit_booked", "B-1", start))
    assert visit is not None
    (confirmed,) = world.notifier.on_visit_booked(visit, booked_ticket, NOON)
    world.change(None, ticket("T-2"))
    assert confirmed.result == "digested"
    # Then the digest renders a line for the visit, with its window
    sent = world.notifier.run_due(NOON + WINDOW + timedelta(seconds=1))
    assert {o.result for o in sent} == {"sent"}
    digest = world.email.deliveries[-1].message
    assert digest.kind == "digest" and "technician visit booked" in digest.text
    assert f"{start.astimezone(ZoneInfo('Europe/Berlin')):%H:%M}" in digest.text


def test_every_kind_that_can_wait_for_a_digest_has_a_line_in_every_language() -> None:
    book = load_book()
    for language in book.fragments:
        for kind in set(EventKind) - {EventKind.SURVEY}:
            assert f"line_{kind.value}" in book.fragments[language], (language, kind)


def test_other_timeline_entries_book_nothing() -> None:
    assert booked_visit({"pk": "TICKET#T-1", "sk": "EVT#x", "kind": "visit_en_route"}) is None
    assert booked_visit(ticket()) is None


def stream_record(sequence: str, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """One TicketsTable stream record as the event source delivers it."""
    data: dict[str, Any] = {
        "Keys": to_item({"pk": new["pk"], "sk": new["sk"]}),
        "NewImage": to_item(new),
        "SequenceNumber": sequence,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        data["OldImage"] = to_item(old)
    return {"eventID": f"e-{sequence}", "eventName": "MODIFY", "dynamodb": data}


def test_a_record_whose_image_is_no_valid_ticket_fails_alone(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the notifier handler (on the wall clock: a customer without quiet hours), and a
    # batch where one ticket's image lost a required field
    world.customer(quiet_hours=None)
    handler = load_handler("notifier", "handler_notifier_unreadable")
    monkeypatch.setattr(handler, "deps", lambda: world.notifier)
    broken = {k: v for k, v in ticket("T-2").items() if k != "customer_id"}
    event = {
        "Records": [stream_record("101", None, ticket("T-1")), stream_record("102", None, broken)]
    }
    # When the batch is handled
    result = handler.handler(event, FakeContext())
    # Then only the broken record is reported for redelivery, and the other was told
    assert result == {"batchItemFailures": [{"itemIdentifier": "102"}]}
    told = [d.message.subject for d in world.email.deliveries]
    assert len(told) == 1 and "T-1" in told[0]


class OneTicket:
    """The handler's ticket reader: the booked ticket."""

    def __init__(self, image: dict[str, Any]) -> None:
        self.image = image

    def get_ticket(self, ticket_id: str) -> Any:
        from aftercare.domain.ports import TicketDetail

        found = ticket_from_image(to_item(self.image))
        return TicketDetail(ticket=found, occurrences=[], timeline=[])


def test_the_handler_confirms_a_reschedule_again_and_a_redelivery_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the notifier handler (it runs on the wall clock: a customer without quiet hours, or
    # the second confirmation waits for the morning when the suite runs at night in Berlin)
    # and the calendar's audit entries of a booking and its move
    world.customer(quiet_hours=None)
    handler = load_handler("notifier", "handler_notifier_reschedule")
    monkeypatch.setattr(handler, "deps", lambda: world.notifier)
    monkeypatch.setattr(handler, "ticket_reader", lambda: OneTicket(ticket()))
    first = days_from_now(3)
    booked = visit_entry("visit_booked", "B-1", first)
    moved = visit_entry(
        "visit_rescheduled",
        "B-2",
        first + timedelta(days=1),
        from_booking="B-1",
        from_start=first.isoformat(),
    )
    # When the stream delivers the booking, the move, and the move again (a redelivery)
    for sequence, entry in (("201", booked), ("202", moved), ("203", moved)):
        record = stream_record(sequence, None, entry) | {"eventName": "INSERT"}
        assert handler.handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    # Then the customer got two distinct confirmations (the second after the digest window the
    # first opened), and only the new window's reminder waits
    world.notifier.run_due(datetime.now(UTC) + WINDOW + timedelta(seconds=1))
    confirmations = [d for d in world.email.deliveries if "booked" in d.message.subject]
    assert len(confirmations) == 2
    assert confirmations[0].message.subject != confirmations[1].message.subject
    waiting = [n for n in world.store.notifications.values() if n.kind == "visit_reminder"]
    assert sorted((n.occasion.partition("@")[0], n.state.value) for n in waiting) == [
        ("B-1", "suppressed"),
        ("B-2", "pending"),
    ]


def days_from_now(days: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)


class CountingIncident:
    def __init__(self) -> None:
        self.sent = 0
        self.saved = 0

    def count_messages(self, incident_id: str, thing: str, *, saved: int, sent: int) -> None:
        self.sent += sent
        self.saved += saved


def test_an_incident_tells_each_customer_once_and_counts_what_it_saved(world: World) -> None:
    # Given a customer with three devices in one fleet incident
    counter = CountingIncident()
    world.notifier.incidents = counter
    children = [ticket(f"T-{n}", incident_id="INC-1", thing=f"rt-x-000{n}") for n in (1, 2, 3)]
    # When their child tickets open
    outcomes = [world.change(None, child) for child in children]
    # Then one known-issue message went out instead of three ticket-opened messages
    assert [o[0].kind for o in outcomes] == ["known_issue"] * 3
    assert [o[0].result for o in outcomes] == ["sent", "duplicate", "duplicate"]
    (delivery,) = world.email.deliveries
    assert "Known issue" in delivery.message.subject
    # When the fleet fix resolves all three, after the digest window
    later = NOON + 2 * WINDOW
    for child in children:
        world.change(child, resolved(child, how="fleet_fix", at=later), at=later)
    # Then one fix-available message, no resolved messages and no surveys
    assert [d.message.kind for d in world.email.deliveries] == ["known_issue", "fix_available"]
    assert not world.store.surveys
    # and the incident counted 2 sent and 7 saved: 2 ticket-opened messages, and 3 x (resolved
    # + survey) less the one fix-available message
    assert (counter.sent, counter.saved) == (2, 2 + 5)


def test_a_ticket_linked_after_it_opened_hears_of_the_incident(world: World) -> None:
    # Given a ticket opened (and announced) before the storm crossed its threshold
    world.change(None, ticket())
    # When intake links it to the incident
    outcomes = world.change(ticket(), ticket(incident_id="INC-1", version=2))
    # Then its customer gets the known-issue message too: in the digest, as they heard from us
    # a moment ago (the digest and quiet-hours rules apply to incident messages as to any)
    assert [(o.kind, o.result) for o in outcomes] == [("known_issue", "digested")]
    assert [d.message.kind for d in world.email.deliveries] == ["ticket_opened"]

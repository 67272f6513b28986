"""DynamoNotificationStore on moto (`mock_aws`), tables built from template.yaml's properties."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aftercare.adapters.aws import from_item, to_item
from aftercare.adapters.notification_items import notification_key
from aftercare.adapters.notification_reports import NotificationReports
from aftercare.adapters.notifications_store import DynamoNotificationStore
from aftercare.adapters.survey_store import DynamoSurveyStore
from aftercare.domain.composition import Composer
from aftercare.domain.notifications import (
    AttemptRecord,
    AttemptStatus,
    EventKind,
    Notification,
    NotificationRef,
    NotificationState,
    Survey,
)
from aftercare.domain.preferences import NotificationProfile
from aftercare.domain.pricing import load_price_table
from aftercare.domain.routing import settled
from aftercare.domain.surveys import (
    AlreadyAnswered,
    FollowUp,
    SurveyAnswer,
    answer_survey,
    survey_id_for,
)
from aftercare.domain.templates import load_book
from aftercare.models.parts import LineStatus
from moto import mock_aws

from tests.fakes.notifications import ticket_summary
from tests.fakes.tables import create_template_tables

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TABLES = ("NotificationsTable", "TicketsTable", "CustomersTable")


@pytest.fixture
def ddb(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        create_template_tables(client, TABLES)
        yield client


@pytest.fixture
def store(ddb: Any) -> DynamoNotificationStore:
    return DynamoNotificationStore(
        table="aftercare-notifications-test",
        tickets_table="aftercare-tickets-test",
        customers_table="aftercare-customers-test",
        ddb=ddb,
    )


@pytest.fixture
def surveys(ddb: Any) -> DynamoSurveyStore:
    return DynamoSurveyStore(
        table="aftercare-notifications-test", tickets_table="aftercare-tickets-test", ddb=ddb
    )


@pytest.fixture
def reports(ddb: Any) -> NotificationReports:
    return NotificationReports(table="aftercare-notifications-test", ddb=ddb)


def notification(ticket_id: str = "T-1", kind: EventKind = EventKind.TICKET_OPENED) -> Notification:
    return Notification(
        ticket_id=ticket_id,
        kind=kind,
        customer_id="c-1",
        critical=False,
        facts=ticket_summary(NOW, ticket_id),
        created_at=NOW,
        due_at=NOW,
    )


def test_profiles_are_prefetched_for_a_batch(ddb: Any, store: DynamoNotificationStore) -> None:
    for n in (1, 2):
        item = {"customer_id": f"c-{n}", "name": f"C{n}", "channels": ["email"]}
        ddb.put_item(TableName=store.customers_table, Item=to_item(item))
    store.prefetch_profiles(["c-1", "c-2", "c-9"])
    ddb.delete_item(TableName=store.customers_table, Key={"customer_id": {"S": "c-1"}})
    # answered from the prefetch, including "no such customer", until the next prefetch
    assert store.get_profile("c-1") is not None and store.get_profile("c-9") is None
    store.prefetch_profiles([])
    assert store.get_profile("c-1") is None


def test_profile_reads_quiet_hours_and_channels(ddb: Any, store: DynamoNotificationStore) -> None:
    customer = {
        "customer_id": "c-1",
        "name": "Ada",
        "tier": "vip",
        "language": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "channels": ["push", "email"],
        "contact": {"email": "a@example.com", "push": "tok"},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
    }
    ddb.put_item(TableName=store.customers_table, Item=to_item(customer))
    profile = store.get_profile("c-1")
    assert profile is not None and profile.quiet_hours is not None
    assert [c.value for c in profile.channels] == ["push", "email"]
    assert store.get_profile("nobody") is None


def test_a_notification_is_created_once(store: DynamoNotificationStore) -> None:
    assert store.create(notification(), NOW + timedelta(seconds=60))
    assert not store.create(notification(), NOW + timedelta(seconds=60))
    assert store.create(notification(kind=EventKind.RESOLVED), NOW)


def test_the_leased_new_notification_is_not_claimed_until_the_lease_ends(
    store: DynamoNotificationStore,
) -> None:
    store.create(notification(), NOW + timedelta(seconds=60))
    assert (
        store.claim_due_notifications(NOW + timedelta(seconds=30), NOW + timedelta(seconds=90))
        == []
    )
    (claimed,) = store.claim_due_notifications(
        NOW + timedelta(seconds=61), NOW + timedelta(seconds=120)
    )
    assert claimed.ticket_id == "T-1"
    # a second sweeper, while the lease runs, gets nothing
    assert (
        store.claim_due_notifications(NOW + timedelta(seconds=62), NOW + timedelta(seconds=120))
        == []
    )


def test_a_released_claim_is_due_at_once_and_only_our_own_lease_is_released(
    store: DynamoNotificationStore,
) -> None:
    # Given a due notification claimed by a sweep that runs out of time
    store.create(notification(), NOW)
    mine = NOW + timedelta(seconds=60)
    (claimed,) = store.claim_due_notifications(NOW, mine)
    # When another sweep tries to give back a lease it does not hold, nothing changes
    store.release(NOW + timedelta(seconds=61), notifications=[claimed.ref])
    assert store.claim_due_notifications(NOW + timedelta(seconds=1), mine) == []
    # When the sweep gives it back, the next sweep takes it at once
    store.release(mine, notifications=[claimed.ref])
    (again,) = store.claim_due_notifications(NOW + timedelta(seconds=2), NOW + timedelta(minutes=2))
    assert again.ref == claimed.ref


def test_settled_notifications_leave_the_due_queue(store: DynamoNotificationStore) -> None:
    n = notification()
    store.create(n, NOW)
    store.record([], settled=[settled(n, NotificationState.SENT, message_id="M-1")])
    assert store.claim_due_notifications(NOW + timedelta(hours=1), NOW + timedelta(hours=2)) == []
    (stored,) = store.get_many([n.ref])
    assert stored.state is NotificationState.SENT and stored.message_id == "M-1"


def test_a_retry_is_due_again_later_with_one_more_try(store: DynamoNotificationStore) -> None:
    n = notification()
    store.create(n, NOW)
    retry = settled(n, NotificationState.PENDING, retry_at=NOW + timedelta(minutes=1))
    store.record([], settled=[retry])
    assert (
        store.claim_due_notifications(NOW + timedelta(seconds=30), NOW + timedelta(hours=1)) == []
    )
    (again,) = store.claim_due_notifications(NOW + timedelta(minutes=2), NOW + timedelta(hours=1))
    assert again.tries == 1


def test_the_digest_window_opens_once(store: DynamoNotificationStore) -> None:
    until = NOW + timedelta(minutes=5)
    assert store.open_window("c-1", NOW, until) is None
    assert store.open_window("c-1", NOW + timedelta(minutes=1), NOW + timedelta(minutes=6)) == until
    assert store.open_window("c-1", until, until + timedelta(minutes=5)) is None


def test_a_bundle_is_due_at_its_earliest_member_and_finishes(
    store: DynamoNotificationStore,
) -> None:
    refs = [NotificationRef(ticket_id=f"T-{n}", kind=EventKind.TICKET_OPENED) for n in range(3)]
    store.add_to_bundle("c-1", refs[0], NOW + timedelta(minutes=10))
    store.add_to_bundle("c-1", refs[1], NOW + timedelta(minutes=5))
    store.add_to_bundle("c-1", refs[2], NOW + timedelta(minutes=20))
    assert store.claim_due_bundles(NOW + timedelta(minutes=4), NOW + timedelta(hours=1)) == []
    (bundle,) = store.claim_due_bundles(NOW + timedelta(minutes=5), NOW + timedelta(minutes=6))
    assert sorted(r.ticket_id for r in bundle.members) == ["T-0", "T-1", "T-2"]
    store.finish_bundle("c-1", bundle.members, window_until=NOW + timedelta(minutes=10))
    assert store.claim_due_bundles(NOW + timedelta(hours=2), NOW + timedelta(hours=3)) == []
    assert store.open_window("c-1", NOW + timedelta(minutes=9), NOW) is not None


def test_members_that_join_while_sending_stay_for_the_next_digest(
    store: DynamoNotificationStore,
) -> None:
    first = NotificationRef(ticket_id="T-0", kind=EventKind.TICKET_OPENED)
    late = NotificationRef(ticket_id="T-9", kind=EventKind.TICKET_OPENED)
    store.add_to_bundle("c-1", first, NOW)
    (bundle,) = store.claim_due_bundles(NOW, NOW + timedelta(minutes=1))
    store.add_to_bundle("c-1", late, NOW)
    store.finish_bundle("c-1", bundle.members, window_until=NOW + timedelta(minutes=5))
    (next_bundle,) = store.claim_due_bundles(NOW + timedelta(minutes=5), NOW + timedelta(hours=1))
    assert next_bundle.members == [late]


def test_attempts_land_in_the_log_and_on_the_ticket_timeline(
    ddb: Any, store: DynamoNotificationStore, reports: NotificationReports
) -> None:
    records = [
        AttemptRecord(
            ticket_id="T-1",
            customer_id="c-1",
            kind="ticket_opened",
            channel=channel,
            language="en",
            status=status,
            reason=reason,
            at=NOW,
            message_id="M-1",
            subject="s",
            body="b",
        )
        for channel, status, reason in (
            ("sms", AttemptStatus.FAILED, "SNS InvalidParameter"),
            ("email", AttemptStatus.SENT, None),
        )
    ]
    store.record(records)
    by_ticket = reports.list_attempts(ticket_id="T-1")
    by_customer = reports.list_attempts(customer_id="c-1")
    everything = reports.list_attempts()
    assert [a["channel"] for a in by_ticket] == ["sms", "email"]
    assert by_ticket == by_customer == everything
    timeline = ddb.query(
        TableName=store.tickets_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "TICKET#T-1"}},
    )["Items"]
    details = sorted((from_item(i)["detail"]["channel"], from_item(i)["kind"]) for i in timeline)
    assert details == [("email", "notification"), ("sms", "notification")]


def test_a_survey_is_answered_once_counted_and_followed_up(
    store: DynamoNotificationStore, surveys: DynamoSurveyStore, reports: NotificationReports
) -> None:
    survey_id = survey_id_for("T-1")
    survey = Survey(
        survey_id=survey_id,
        ticket_id="T-1",
        customer_id="c-1",
        facts=ticket_summary(NOW),
        created_at=NOW,
        due_at=NOW + timedelta(seconds=5),
    )
    assert store.schedule_survey(survey) and not store.schedule_survey(survey)
    (due,) = store.claim_due_surveys(NOW + timedelta(seconds=5), NOW + timedelta(minutes=1))
    store.settle_survey(due.survey_id, "sent", sent_at=NOW, retry_at=None)
    answered = answer_survey(surveys, survey_id, "c-1", SurveyAnswer(rating=1, comment="bad"), NOW)
    assert answered.rating == 1 and answered.status == "answered" and answered.comment == "bad"
    with pytest.raises(AlreadyAnswered):
        surveys.answer(survey, SurveyAnswer(rating=5), NOW, None)
    (follow_up,) = reports.list_followups()
    assert FollowUp.model_validate(follow_up).rating == 1
    csat = surveys.csat()
    assert (csat.answered, csat.satisfied, csat.ratings["1"]) == (1, 0, 1)


# Written by the code before notifications kept a `TicketSummary`: its own copy of the ticket's
# fields (`TicketFacts`), plain strings for the vocabularies, parts lines as stored dicts.
OLD_FACTS: dict[str, Any] = {
    "ticket_id": "T-OLD",
    "customer_id": "c-1",
    "thing": "ac-hp-0001",
    "model": "AC-HP",
    "fault_code": "FAN-STALL",
    "title_en": "Cooling fan stalled",
    "title_zh": "散热风扇停转",
    "category": "thermal",
    "region": "eu-west",
    "severity": "major",
    "status": "resolved",
    "in_warranty": False,
    "remote_fixable": False,
    "auto_diagnose": True,
    "routine": None,
    "parts": [
        {
            "reservation_id": "R-1",
            "sku": "FAN-80MM",
            "name_en": "Cooling fan 80 mm",
            "name_zh": "80mm 散热风扇",
            "qty": 1,
            "warehouse": "wh-eu-1",
            "unit_price": 12.5,
            "currency": "EUR",
            "status": "consumed",
            "reserved_at": "2026-11-27T11:00:00Z",
            "hold_expires_at": None,
        }
    ],
    "flags": ["needs_onsite_dispatch"],
    "resolution": "on_site",
    "resolved_at": "2026-11-27T11:50:00Z",
    "opened_at": "2026-11-27T11:00:00Z",
    "first_seen": "2026-11-27T10:59:58Z",
}


def test_a_notification_written_by_the_old_code_is_read_and_can_be_told(
    ddb: Any, store: DynamoNotificationStore
) -> None:
    # Given a waiting notification item as the old code stored it
    item = {
        "pk": "TICKET#T-OLD",
        "sk": "EVENT#resolved",
        "ticket_id": "T-OLD",
        "kind": "resolved",
        "customer_id": "c-1",
        "critical": False,
        "facts": OLD_FACTS,
        "created_at": NOW.isoformat(),
        "due_at": NOW.isoformat(),
        "state": "deferred",
        "tries": 0,
        "message_id": None,
        "expires_at": 1_900_000_000,
    }
    ddb.put_item(TableName="aftercare-notifications-test", Item=to_item(item))
    # When the store reads it back
    (notification,) = store.get_many([NotificationRef(ticket_id="T-OLD", kind=EventKind.RESOLVED)])
    # Then its snapshot is the ticket summary, typed, with every field the old code kept
    facts = notification.facts
    # (the visit summary and the incident came later: an old snapshot has neither; nor the
    # lines' stock shard, which reads as shard 0, the unsharded item)
    dumped = facts.model_dump(
        mode="json", exclude={"visit": True, "incident_id": True, "parts": {0: {"shard"}}}
    )
    assert dumped == OLD_FACTS and facts.visit is None and facts.incident_id is None
    assert facts.parts[0].shard == 0
    assert facts.parts[0].status is LineStatus.CONSUMED and facts.parts[0].name("zh") == (
        "80mm 散热风扇"
    )
    # And a message can be written from it (parts, cost and title as before)
    composer = Composer(load_book(), load_price_table(), "https://s.example.com/surveys")
    message = composer.single(notification.kind, facts, NotificationProfile(customer_id="c-1"))
    assert "T-OLD" in message.subject and "Cooling fan stalled" in message.text


def test_a_survey_written_by_the_old_code_is_read(ddb: Any, surveys: DynamoSurveyStore) -> None:
    # Given a sent survey item as the old code stored it
    survey_id = survey_id_for("T-OLD")
    item = {
        "pk": f"SURVEY#{survey_id}",
        "sk": "SURVEY",
        "survey_id": survey_id,
        "ticket_id": "T-OLD",
        "customer_id": "c-1",
        "facts": OLD_FACTS,
        "created_at": NOW.isoformat(),
        "due_at": NOW.isoformat(),
        "status": "sent",
        "tries": 1,
        "sent_at": NOW.isoformat(),
    }
    ddb.put_item(TableName="aftercare-notifications-test", Item=to_item(item))
    # When it is read back, Then the snapshot names the ticket's fault as it did
    survey = surveys.get_survey(survey_id)
    assert survey is not None and survey.facts.fault_code == "FAN-STALL"
    assert survey.facts.title("zh-CN") == "散热风扇停转"


def test_visit_messages_are_keyed_by_their_visit_and_a_waiting_one_can_be_withdrawn(
    store: DynamoNotificationStore,
) -> None:
    # Given the reminders of two visits of one ticket (a reschedule: new booking, new start)
    first, second = (
        notification(kind=EventKind.VISIT_REMINDER).model_copy(update={"occasion": o})
        for o in ("B-1@2026-11-30T08:00:00+00:00", "B-2@2026-12-01T08:00:00+00:00")
    )
    # When both are created, and the first again (a redelivered record)
    assert store.create(first, NOW) and store.create(second, NOW)
    assert not store.create(first, NOW)
    # Then each has its own item, keyed by booking and start
    assert notification_key(first.ref)["sk"] == "EVENT#visit_reminder#B-1@2026-11-30T08:00:00+00:00"
    # When the first visit's reminder is withdrawn (its window is gone)
    assert store.withdraw(first.ref, reason="rescheduled")
    assert not store.withdraw(first.ref, reason="rescheduled")  # once
    # Then it is suppressed and never claimed; the second is still due
    (stored,) = store.get_many([first.ref])
    assert stored.state is NotificationState.SUPPRESSED
    claimed = store.claim_due_notifications(NOW + timedelta(hours=1), NOW + timedelta(hours=2))
    assert [n.ref for n in claimed] == [second.ref]
    # And a notification already sent cannot be withdrawn
    store.record([], settled=[settled(second, NotificationState.SENT, message_id="M-2")])
    assert not store.withdraw(second.ref, reason="too late")
    assert NotificationRef.parse(second.ref.token()) == second.ref

"""Resolving a fleet incident: the campaign is recorded and queued at once, a worker sends it a
page at a time through the diagnostics path (paced, idempotent per child and per page), and
each device's answer decides its child (fakes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.incident_campaign import STALLED_AFTER, PageOutcome
from aftercare.domain.incident_desk import (
    CampaignRunning,
    IncidentAlreadyResolved,
    ResolveIncident,
)
from aftercare.domain.incidents import (
    CampaignCursor,
    CampaignPage,
    IncidentStatus,
    load_incident_policy,
)
from aftercare.domain.ports.campaigns import CampaignNotQueued
from aftercare.domain.ports.incidents import IncidentNotFound
from aftercare.models.diagnostics import Purpose
from aftercare.models.tickets import Resolution, TicketStatus
from pydantic import ValidationError

from tests.fakes.diagnostics import NOW
from tests.fakes.incidents import INCIDENT_ID, IncidentWorld, children

ENGINEER = Caller(subject="s", username="ada", groups=frozenset({"engineers"}))
CUSTOMER = Caller(subject="c", username="c", groups=frozenset({"customers"}), customer_id="c-1")
RESET = ResolveIncident(fix="reset_component")


def test_resolving_records_and_queues_the_campaign_and_sends_nothing_itself():
    # Given an incident with 5 children
    world = IncidentWorld(children(5))
    # When an engineer resolves it
    view = world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    # Then it is mitigating with its campaign recorded (who, when, counts at 0) and page 0
    # queued, and no device has been sent anything yet
    assert view.incident.status is IncidentStatus.MITIGATING
    assert view.campaign is not None and view.campaign == view.incident.campaign
    assert (view.campaign.started_by, view.campaign.started_at) == (ENGINEER.actor, NOW)
    assert (view.campaign.sent, view.campaign.pages_done, view.campaign.walked) == (0, 0, 0)
    ((page),) = world.queue.pages
    assert (page.incident_id, page.page, page.campaign_id) == (
        INCIDENT_ID,
        0,
        f"fleet-{INCIDENT_ID}",
    )
    assert world.publisher.published == [] and world.pauses == []
    # and the storm counters are untouched until the campaign ends
    assert world.incidents.resets == []


def test_the_worker_sends_a_reset_to_each_active_child_paced_then_resolves_the_incident():
    # Given 5 children, one already resolved on its own, and a resolve queued
    tickets = children(5)
    tickets[0] = tickets[0].model_copy(update={"status": TicketStatus.RESOLVED})
    world = IncidentWorld(tickets)
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    # When the worker takes the queued page
    assert world.run_campaign() == [PageOutcome.FINISHED]
    # Then the 4 active children's devices got reset_component, paced at the policy's rate
    assert sorted(thing for thing, _ in world.publisher.published) == [
        f"ic-300-{i:04d}" for i in range(1, 5)
    ]
    assert {r.routine for _, r in world.publisher.published} == {"reset_component"}
    rate = load_incident_policy().resolve.campaign_per_second
    assert world.pauses == [pytest.approx(1 / rate)] * 4
    incident = world.incidents.incident
    # and the incident is resolved when the page's sends were done
    assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at == world.now
    assert world.now == NOW + timedelta(seconds=4 / rate)
    assert incident.campaign is not None
    assert (incident.campaign.sent, incident.campaign.already_closed) == (4, 1)
    assert incident.campaign.finished_at == world.now and incident.campaign.cursor is None
    # and the storm's counters were zeroed (this window and the one before)
    ((model, group, windows),) = world.incidents.resets
    assert (model, group, len(windows)) == ("IC-300", "code=IO-MODULE-FAIL", 2)
    records = [r for t in tickets for r in world.store.for_ticket(t.ticket_id)]
    assert {r.purpose for r in records} == {Purpose.FLEET_FIX}


def test_the_pacing_counts_each_sends_own_time_against_its_interval():
    # Given devices whose every request takes 30 ms to send (the record and the publish)
    world = IncidentWorld(children(5))
    publish = world.publisher.publish

    def slow_publish(thing: str, request: object) -> None:
        world.now += timedelta(milliseconds=30)
        publish(thing, request)  # type: ignore[arg-type]

    world.publisher.publish = slow_publish  # type: ignore[method-assign]
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    world.run_campaign()
    # Then the page still keeps the policy's rate: each pause is the interval less the send
    interval = 1 / load_incident_policy().resolve.campaign_per_second
    assert world.pauses == [pytest.approx(interval - 0.03)] * 5
    assert (world.now - NOW).total_seconds() == pytest.approx(5 * interval)


def test_a_page_of_slow_sends_stops_in_time_and_the_next_page_goes_on_from_there():
    # Given devices whose every request takes 200 ms to send (4x the 50 ms interval)
    policy = load_incident_policy()
    world = IncidentWorld(children(300))
    publish = world.publisher.publish

    def slow_publish(thing: str, request: object) -> None:
        world.now += timedelta(milliseconds=200)
        publish(thing, request)  # type: ignore[arg-type]

    world.publisher.publish = slow_publish  # type: ignore[method-assign]
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    # When the worker takes the first page (300 children fit in one page of 400)
    assert world.worker.run_page(world.queue.pages.pop(0), NOW) is PageOutcome.SENT
    # Then it stopped after twice the page's planned time, not at the worker's timeout
    first = world.incidents.incident.campaign
    assert first is not None and first.cursor is not None
    budget = 2 * policy.resolve.page_seconds
    assert first.sent == budget * 5 + 1 < 300
    assert world.now - NOW < timedelta(seconds=budget + 1)
    # and the next page goes on after the last child it walked, so all are sent once
    assert world.run_campaign() == [PageOutcome.FINISHED]
    things = [thing for thing, _ in world.publisher.published]
    assert len(things) == len(set(things)) == 300
    campaign = world.incidents.incident.campaign
    assert campaign is not None and (campaign.sent, campaign.pages_done) == (300, 2)


def test_a_campaign_of_1200_children_is_sent_in_pages_over_every_shard_and_finishes():
    # Given 1,200 children spread over the policy's 8 shards
    policy = load_incident_policy()
    world = IncidentWorld(children(1200), shards=policy.detection.shards)
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    # When the worker drains the queue
    outcomes = world.run_campaign()
    # Then it took ceil(1200 / page size) pages, one message each, the last one finishing
    size = policy.resolve.page_size
    pages = -(-1200 // size)
    assert pages > 1, "the policy's page must be smaller than 1,200 children for this test"
    assert outcomes == [PageOutcome.SENT] * (pages - 1) + [PageOutcome.FINISHED]
    # and every child's device got exactly one request, counted once
    things = [thing for thing, _ in world.publisher.published]
    assert len(things) == len(set(things)) == 1200
    campaign = world.incidents.incident.campaign
    assert campaign is not None
    assert (campaign.sent, campaign.pages_done, campaign.walked) == (1200, pages, 1200)
    assert world.incidents.incident.status is IncidentStatus.RESOLVED
    assert len(world.incidents.resets) == 1


def test_progress_is_visible_between_pages():
    policy = load_incident_policy()
    world = IncidentWorld(children(policy.resolve.page_size + 3))
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    # When the first page was sent
    assert world.worker.run_page(world.queue.pages.pop(0), NOW) is PageOutcome.SENT
    # Then show says how far the campaign got, and the incident is still mitigating
    view = world.desk.show(ENGINEER, INCIDENT_ID)
    assert view.incident.status is IncidentStatus.MITIGATING
    assert view.campaign is not None
    assert (view.campaign.pages_done, view.campaign.sent) == (1, policy.resolve.page_size)
    ((page),) = world.queue.pages
    assert page.page == 1 and page.cursor.after is not None


def test_a_redelivered_page_sends_nothing_twice_and_counts_nothing_twice():
    policy = load_incident_policy()
    world = IncidentWorld(children(policy.resolve.page_size + 3))
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    first = world.queue.pages.pop(0)
    world.worker.run_page(first, NOW)
    sent = len(world.publisher.published)
    # When SQS delivers page 0 again after it was recorded (the delete was lost)
    outcome = world.worker.run_page(first, NOW, redelivered=True)
    # Then nothing is sent or counted again; the next page is queued once more, in case the
    # first delivery stopped before queueing it
    assert outcome is PageOutcome.DUPLICATE
    assert len(world.publisher.published) == sent
    campaign = world.incidents.incident.campaign
    assert campaign is not None and (campaign.pages_done, campaign.sent) == (1, sent)
    assert [p.page for p in world.queue.pages] == [1, 1]
    # and the two messages for page 1 send it once and count it once
    assert world.run_campaign() == [PageOutcome.FINISHED, PageOutcome.DUPLICATE]
    # and a late redelivery of the last page zeroes the same storm windows as its first delivery
    last = CampaignPage(
        incident_id=INCIDENT_ID, campaign_id=f"fleet-{INCIDENT_ID}", page=1, cursor=CampaignCursor()
    )
    world.worker.run_page(last, NOW + timedelta(hours=1), redelivered=True)
    first_reset, late_reset = world.incidents.resets
    assert late_reset == first_reset
    things = [thing for thing, _ in world.publisher.published]
    assert len(things) == len(set(things)) == policy.resolve.page_size + 3
    campaign = world.incidents.incident.campaign
    assert campaign is not None and campaign.sent == policy.resolve.page_size + 3
    assert world.queue.pages == []


def test_a_page_sent_again_before_it_was_recorded_reaches_no_device_twice():
    # Given a page whose sends went out but whose counts were never recorded (the worker died)
    world = IncidentWorld(children(4))
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    page = world.queue.pages.pop(0)
    recorded = world.incidents.record_page

    def die(*_: object) -> None:
        raise TimeoutError("the invocation timed out before the page was recorded")

    world.incidents.record_page = die  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        world.worker.run_page(page, NOW)
    assert len(world.publisher.published) == 4
    world.incidents.record_page = recorded  # type: ignore[method-assign]
    # When the page is redelivered
    assert world.worker.run_page(page, NOW, redelivered=True) is PageOutcome.FINISHED
    # Then no device got a second request, and each child is counted once
    assert len(world.publisher.published) == 4
    campaign = world.incidents.incident.campaign
    assert campaign is not None and (campaign.sent, campaign.walked) == (4, 4)


def test_a_page_of_another_campaign_or_incident_is_stale():
    world = IncidentWorld(children(2))
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    page = world.queue.pages.pop(0)
    other = page.model_copy(update={"incident_id": "INC-202603011200-ffffff"})
    assert world.worker.run_page(other, NOW) is PageOutcome.STALE
    ahead = page.model_copy(update={"page": 3})
    assert world.worker.run_page(ahead, NOW) is PageOutcome.STALE
    assert world.publisher.published == []


def test_a_confirmed_child_resolves_fleet_fix_and_an_unconfirmed_one_stays_open():
    tickets = children(2)
    world = IncidentWorld(tickets)
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    world.run_campaign()
    sent = dict(world.publisher.published)
    # When the first device's reset cleared the fault and the second's did not
    world.answer(tickets[0].thing, sent[tickets[0].thing].request_id, remedied=True)
    world.answer(
        tickets[1].thing,
        sent[tickets[1].thing].request_id,
        status="failed",
        findings={"remaining": ["IO-MODULE-FAIL"]},
    )
    # Then the first child is resolved fleet_fix, the second stays open on the normal path
    done, kept = (world.store.tickets[t.ticket_id] for t in tickets)
    assert done.status is TicketStatus.RESOLVED and done.resolution is Resolution.FLEET_FIX
    assert kept.status is TicketStatus.OPEN and kept.resolution is None


def test_a_firmware_fix_runs_the_codes_own_check_and_needs_a_note():
    with pytest.raises(ValidationError):
        ResolveIncident.model_validate({"fix": "firmware_fix"})
    world = IncidentWorld(children(1, routine="self_test"))
    note = ResolveIncident(fix="firmware_fix", note="2.4.1 fixes the I/O hang")
    view = world.desk.resolve(ENGINEER, INCIDENT_ID, note, NOW)
    world.run_campaign()
    assert [r.routine for _, r in world.publisher.published] == ["self_test"]
    assert view.incident.fix_note == "2.4.1 fixes the I/O hang"


def test_resolving_twice_customers_and_unknown_ids_are_refused():
    world = IncidentWorld(children(1))
    with pytest.raises(Forbidden):
        world.desk.resolve(CUSTOMER, INCIDENT_ID, RESET, NOW)
    with pytest.raises(Forbidden):
        world.desk.show(CUSTOMER, INCIDENT_ID)
    with pytest.raises(IncidentNotFound):
        world.desk.show(ENGINEER, "INC-202603011200-ffffff")
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    with pytest.raises(CampaignRunning):
        world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW + timedelta(minutes=1))
    world.run_campaign()
    with pytest.raises(IncidentAlreadyResolved):
        world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW + timedelta(1))


def test_a_campaign_the_queue_refused_leaves_the_incident_open_to_retry():
    world = IncidentWorld(children(1))

    def refuse(page: object) -> None:
        raise CampaignNotQueued("queue unreachable")

    world.queue.enqueue = refuse  # type: ignore[method-assign]
    with pytest.raises(CampaignNotQueued):
        world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    assert world.incidents.incident.status is IncidentStatus.OPEN
    assert world.incidents.incident.campaign is None


def test_a_deployment_sets_its_page_length_and_zero_keeps_the_policys():
    policy = load_incident_policy()
    assert policy.with_page_seconds(0) is policy
    assert policy.resolve.page_size == int(policy.resolve.campaign_per_second * 20)
    assert policy.with_page_seconds(1).resolve.page_size == int(policy.resolve.campaign_per_second)
    with pytest.raises(ValidationError):
        policy.with_page_seconds(301)  # a page must end well inside the worker's timeout


def test_a_stalled_campaign_is_queued_again_by_a_second_resolve_and_a_live_one_is_not():
    # Given a resolve whose first page never reached the worker (lost, or dead-lettered)
    world = IncidentWorld(children(3))
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    world.queue.pages.clear()
    # When an engineer resolves it again while the campaign may still be moving
    with pytest.raises(CampaignRunning):
        world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW + STALLED_AFTER / 2)
    # or asks for another fix
    other = ResolveIncident(fix="firmware_fix", note="2.4.1 fixes the I/O hang")
    with pytest.raises(CampaignRunning):
        world.desk.resolve(ENGINEER, INCIDENT_ID, other, NOW + STALLED_AFTER)
    # Then nothing is queued; once it has not moved for STALLED_AFTER, its next page is
    view = world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW + STALLED_AFTER)
    assert view.incident.status is IncidentStatus.MITIGATING
    assert [p.page for p in world.queue.pages] == [0]
    assert world.run_campaign() == [PageOutcome.FINISHED]
    assert len(world.publisher.published) == 3


def test_queueing_a_page_that_was_not_lost_sends_and_counts_it_once():
    world = IncidentWorld(children(3))
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW)
    world.desk.resolve(ENGINEER, INCIDENT_ID, RESET, NOW + STALLED_AFTER)  # page 0 queued twice
    assert world.run_campaign() == [PageOutcome.FINISHED, PageOutcome.DUPLICATE]
    campaign = world.incidents.incident.campaign
    assert len(world.publisher.published) == 3
    assert campaign is not None and (campaign.sent, campaign.pages_done) == (3, 1)

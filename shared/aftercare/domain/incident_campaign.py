"""A fleet incident's fix campaign, sent by a queue worker one page at a time, at any size.

`IncidentDesk.resolve` records the campaign on the incident (`mitigating`) and queues page 0;
the worker (`run_page`, one message per invocation) walks the next `page_size` child links
from the message's cursor, sends each active child's device the fix through the diagnostics
path (purpose `FLEET_FIX`, paced at `campaign_per_second`), records the page's counts on the
incident and queues the next page. After the last page the incident is `resolved` and the
storm's counters are zeroed. Each device's answer decides its child as before
(`diagnostics_plans._fleet_fix_decision`): cleared -> resolved `fleet_fix`, otherwise it stays
open on the normal path.

Redelivery (SQS is at-least-once) neither sends nor counts twice:

- a child's request id derives from (ticket, campaign) and an existing request is not
  published again (`resend_pending=False`), so a page sent again reaches no device twice;
- the page's counts and the advanced cursor are stored in one conditional write that holds
  only while the incident still has `page` pages recorded: a page recorded already is
  reported `duplicate` and counts nothing;
- a *redelivered* message (receive count > 1) that finds its own page recorded as the last one
  hands on again (queues the next page, or zeroes the storm counters): the earlier delivery may
  have stopped right after its write. The worst this leaves is a second message for the next
  page, received once, which the same rules turn into a `duplicate` or a page that loses the
  conditional write (no send, no count, no further hand-on).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_records import PublishFailed, TicketNotActive, derived_request_id
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    Campaign,
    CampaignCursor,
    CampaignPage,
    FixKind,
    Incident,
    IncidentPolicy,
    IncidentStatus,
    window_of,
)
from aftercare.domain.ports import CommandPublisher, DiagnosticsStore
from aftercare.domain.ports.campaigns import CampaignQueue, CampaignStore, TicketBatch
from aftercare.domain.ports.incidents import IncidentMoved
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import Purpose


class PageOutcome(StrEnum):
    SENT = "sent"  # the page went out, its counts are on the incident, the next page is queued
    FINISHED = "finished"  # the last page went out: the incident is resolved
    DUPLICATE = "duplicate"  # an earlier delivery recorded this page: nothing sent or counted
    STALE = "stale"  # no such incident, campaign or page (not this campaign's): nothing to do


def campaign_id_of(incident_id: str) -> str:
    """The campaign's id (one campaign per incident; it seeds each child's request id)."""
    return f"fleet-{incident_id}"


def new_campaign(
    incident_id: str, fix: FixKind, actor: str, policy: IncidentPolicy, now: datetime
) -> Campaign:
    return Campaign(
        campaign_id=campaign_id_of(incident_id),
        fix=fix,
        started_by=actor,
        started_at=now,
        page_size=policy.resolve.page_size,
    )


# A campaign whose incident has not moved for this long is stalled (its queued page was lost
# between the resolve's two writes, or dead-lettered): longer than a page can take to be
# received, retried (the queue's 720 s visibility) and sent, so a live campaign is never taken
# for a stalled one. Resolving a stalled campaign queues its next page again (`next_page`):
# safe even if the page was not lost, since a page is sent and counted once however often it
# is queued.
STALLED_AFTER = timedelta(minutes=15)


def next_page(incident_id: str, campaign: Campaign) -> CampaignPage | None:
    """The page after the recorded ones (None: every page was sent)."""
    if campaign.cursor is None:
        return None
    return CampaignPage(
        incident_id=incident_id,
        campaign_id=campaign.campaign_id,
        page=campaign.pages_done,
        cursor=campaign.cursor,
    )


def stalled(incident: Incident, now: datetime) -> CampaignPage | None:
    """The page to queue again when `incident`'s campaign has stalled (else None)."""
    campaign = incident.campaign
    if campaign is None or now - incident.updated_at < STALLED_AFTER:
        return None
    return next_page(incident.incident_id, campaign)


def first_page(incident_id: str) -> CampaignPage:
    return CampaignPage(
        incident_id=incident_id,
        campaign_id=campaign_id_of(incident_id),
        page=0,
        cursor=CampaignCursor(),
    )


def with_page(
    incident: Incident,
    campaign: Campaign,
    counts: Counter[str],
    after: CampaignCursor | None,
    now: datetime,
) -> Incident:
    """The incident with one more page counted; after the last page (`after` None), resolved."""
    progressed = campaign.model_copy(
        update={
            "pages_done": campaign.pages_done + 1,
            "cursor": after,
            "sent": campaign.sent + counts["sent"],
            "not_sent": campaign.not_sent + counts["not_sent"],
            "already_closed": campaign.already_closed + counts["already_closed"],
            "finished_at": now if after is None else None,
        }
    )
    update: dict[str, object] = {"campaign": progressed, "updated_at": now}
    if after is None:
        update |= {"status": IncidentStatus.RESOLVED, "resolved_at": now}
    return incident.model_copy(update=update)


@dataclass(frozen=True)
class CampaignWorker:
    """Sends one campaign page per queue message (see the module docstring)."""

    incidents: CampaignStore
    tickets: TicketBatch
    diagnostics: DiagnosticsStore
    publisher: CommandPublisher
    queue: CampaignQueue
    policy: IncidentPolicy
    pause: Callable[[float], None]
    clock: Callable[[], datetime]  # when the page's sends are done (a page takes seconds)

    def run_page(
        self, message: CampaignPage, now: datetime, *, redelivered: bool = False
    ) -> PageOutcome:
        incident = self.incidents.get_incident(message.incident_id)
        campaign = incident.campaign if incident else None
        if incident is None or campaign is None or campaign.campaign_id != message.campaign_id:
            return PageOutcome.STALE
        if campaign.pages_done == message.page + 1:
            if redelivered:  # the delivery that recorded the page may have stopped right after
                self._hand_on(incident, campaign, now)
            return PageOutcome.DUPLICATE
        if campaign.pages_done != message.page or incident.status is not IncidentStatus.MITIGATING:
            return (
                PageOutcome.STALE if campaign.pages_done < message.page else PageOutcome.DUPLICATE
            )
        shards = self.policy.detection.shards
        page = self.incidents.children_page(
            incident.incident_id, message.cursor, campaign.page_size, shards
        )
        counts, walked = self._send(page.links, campaign, now)
        after = page.next
        if walked < len(page.links):  # out of time: the next page starts after the last walked
            last = page.links[walked - 1] if walked else None
            after = (
                CampaignCursor(shard=last.shard, after=last.ticket_id) if last else message.cursor
            )
        done = self.clock()
        updated = with_page(incident, campaign, counts, after, done)
        try:
            self.incidents.record_page(updated, message.page)
        except IncidentMoved:
            return PageOutcome.DUPLICATE  # a concurrent delivery of this page recorded it first
        assert updated.campaign is not None
        self._hand_on(updated, updated.campaign, done)
        return PageOutcome.FINISHED if after is None else PageOutcome.SENT

    def _hand_on(self, incident: Incident, campaign: Campaign, now: datetime) -> None:
        """Queue the page after the recorded ones, or (all sent) zero the storm's counters of
        the window the campaign finished in and the one before, so its reports after the fix
        do not reopen an incident (the same windows however late a redelivery comes: a new
        storm's later counts are never zeroed)."""
        page = next_page(incident.incident_id, campaign)
        if page is not None:
            self.queue.enqueue(page)
            return
        minutes = self.policy.detection.window_minutes
        window = window_of(campaign.finished_at or now, minutes)
        self.incidents.reset_storm(
            incident.model, incident.storm.key, [window, window - 1], self.policy.detection.shards
        )

    def _send(
        self, links: Sequence[IncidentLink], campaign: Campaign, now: datetime
    ) -> tuple[Counter[str], int]:
        """Send the page's links in order, paced; return the counts and how many links were
        walked: all of them, unless sending took twice the page's planned time (slow sends),
        so that a page always ends well inside the worker's timeout."""
        tickets = self.tickets.tickets_by_id([link.ticket_id for link in links])
        pacer = _Pacer(self.policy.resolve.campaign_per_second, self.clock, self.pause)
        rate = self.policy.resolve.campaign_per_second
        budget = timedelta(seconds=2 * campaign.page_size / rate)  # the size it was started with
        counts: Counter[str] = Counter()
        for walked, link in enumerate(links):
            if self.clock() - pacer.started > budget:
                return counts, walked
            ticket = tickets.get(link.ticket_id)
            if ticket is None:
                counts["not_sent"] += 1
                continue
            outcome = self._send_one(ticket, campaign, now)
            counts[outcome] += 1
            if outcome == "sent":
                pacer.sent_one()
        return counts, len(links)

    def _send_one(self, ticket: Ticket, campaign: Campaign, now: datetime) -> str:
        if not ticket.active:
            return "already_closed"
        try:
            start_diagnostic(
                self.diagnostics,
                self.publisher,
                ticket,
                routine=self._routine(campaign.fix, ticket),
                params=None,
                timeout=timedelta(minutes=self.policy.resolve.answer_within_minutes),
                actor=campaign.started_by,
                purpose=Purpose.FLEET_FIX,
                now=now,
                request_id=derived_request_id(ticket.ticket_id, campaign.campaign_id),
                resend_pending=False,
            )
        except (TicketNotActive, PublishFailed):
            return "not_sent"
        return "sent"

    def _routine(self, fix: FixKind, ticket: Ticket) -> str:
        if fix is FixKind.RESET_COMPONENT:
            return self.policy.resolve.routine
        return ticket.routine or "self_test"


class _Pacer:
    """Keeps the sends of a page at `per_second`: after the n-th send it waits until n
    intervals from the page's start, so each send's own round trips (a DynamoDB transaction,
    an IoT publish: tens of ms) do not slow the campaign below its rate. A wait is never longer
    than one interval (a clock that jumped cannot stall the page)."""

    def __init__(
        self, per_second: float, clock: Callable[[], datetime], pause: Callable[[float], None]
    ) -> None:
        self.interval = 1.0 / per_second
        self.clock = clock
        self.pause = pause
        self.started = clock()
        self.sent = 0

    def sent_one(self) -> None:
        self.sent += 1
        due = self.started + timedelta(seconds=self.sent * self.interval)
        wait = min(self.interval, (due - self.clock()).total_seconds())
        if wait > 0:
            self.pause(wait)

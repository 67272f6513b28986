"""What engineers do with fleet incidents: list, show (with affected devices, firmware
versions, regions, the trend and the campaign's progress) and resolve.

Resolving starts a fix campaign to the children's devices through the diagnostics path, paced
at the policy's rate: `reset_component` runs the reset routine; `firmware_fix` (the fixed
firmware is out) runs the code's own check routine. The campaign worker sends it a page at a
time (`aftercare.domain.incident_campaign`) and resolves the incident after the last page.
Each device's answer decides its child (`diagnostics_plans._fleet_fix_decision`): cleared ->
resolved `fleet_fix` (parts released by the usual status change), not cleared or no answer ->
it stays open on the normal path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.incident_campaign import first_page, new_campaign, stalled
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    Campaign,
    FixKind,
    Incident,
    IncidentPolicy,
    IncidentStats,
    IncidentStatus,
)
from aftercare.domain.ports.campaigns import CampaignNotQueued, CampaignQueue, TicketBatch
from aftercare.domain.ports.incidents import IncidentNotFound, IncidentReads

MAX_SHOWN_CHILDREN = 1000


class IncidentAlreadyResolved(Exception):
    """The incident was resolved already (its campaign ran)."""


class CampaignRunning(Exception):
    """The incident's fix campaign is being sent (the incident is `mitigating` and its campaign
    moved recently, or another fix was asked for)."""


class ResolveIncident(BaseModel):
    """`POST /incidents/{id}/resolve`: how the fleet was fixed."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    fix: FixKind
    note: Annotated[str | None, Field(min_length=3, max_length=1000)] = None

    @model_validator(mode="after")
    def _firmware_fix_says_which(self) -> ResolveIncident:
        if self.fix is FixKind.FIRMWARE_FIX and not self.note:
            raise ValueError("a firmware_fix needs a note naming the fixed firmware")
        return self


class ChildRow(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    ticket_id: str
    thing: str
    customer_id: str
    region: str
    firmware: str
    status: str
    resolution: str | None = None
    linked_at: datetime
    before_threshold: bool = False


class IncidentView(BaseModel):
    """One incident as engineers see it: the record, its summed statistics, its children."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    incident: Incident
    stats: IncidentStats
    children_by_status: dict[str, int]
    children: list[ChildRow]
    children_shown: int
    campaign: Campaign | None = None  # the fix campaign's progress (also on `incident`)


class IncidentStore(IncidentReads, Protocol):
    def set_status(self, incident: Incident, expected: IncidentStatus) -> None: ...


@dataclass(frozen=True)
class IncidentDesk:
    incidents: IncidentStore
    tickets: TicketBatch
    queue: CampaignQueue
    policy: IncidentPolicy

    def listing(self, who: Caller, limit: int = 100) -> list[tuple[Incident, int]]:
        _require_staff(who)
        shards = self.policy.detection.shards
        found = self.incidents.list_incidents(limit)
        return [(i, self.incidents.incident_stats(i.incident_id, shards).children) for i in found]

    def show(self, who: Caller, incident_id: str) -> IncidentView:
        _require_staff(who)
        incident = self._get(incident_id)
        shards = self.policy.detection.shards
        links = self.incidents.children(incident_id, shards, MAX_SHOWN_CHILDREN)
        rows = self._rows(links)
        by_status = Counter(row.status for row in rows)
        return IncidentView(
            incident=incident,
            stats=self.incidents.incident_stats(incident_id, shards),
            children_by_status=dict(sorted(by_status.items())),
            children=rows,
            children_shown=len(rows),
            campaign=incident.campaign,
        )

    def resolve(
        self, who: Caller, incident_id: str, request: ResolveIncident, now: datetime
    ) -> IncidentView:
        """Start the fix campaign: record it on the incident (now `mitigating`) and queue its
        first page; the campaign worker sends it and resolves the incident after the last page
        (`aftercare.domain.incident_campaign`). Answers at once, whatever the incident's size."""
        _require_staff(who)
        incident = self._get(incident_id)
        if incident.status is IncidentStatus.RESOLVED:
            raise IncidentAlreadyResolved(incident_id)
        if incident.status is IncidentStatus.MITIGATING:
            return self._resume(who, incident, request, now)
        campaign = new_campaign(incident_id, request.fix, who.actor, self.policy, now)
        mitigating = incident.model_copy(
            update={
                "status": IncidentStatus.MITIGATING,
                "fix": request.fix,
                "fix_note": request.note,
                "updated_at": now,
                "resolved_by": who.actor,
                "campaign_request_id": campaign.campaign_id,
                "campaign": campaign,
            }
        )
        self.incidents.set_status(mitigating, IncidentStatus.OPEN)  # one resolve wins a race
        try:
            self.queue.enqueue(first_page(incident_id))
        except CampaignNotQueued:
            self.incidents.set_status(incident, IncidentStatus.MITIGATING)  # open again: retry
            raise
        return self.show(who, incident_id)

    def _resume(
        self, who: Caller, incident: Incident, request: ResolveIncident, now: datetime
    ) -> IncidentView:
        """A stalled campaign (`incident_campaign.STALLED_AFTER` without progress) of the same
        fix gets its next page queued again; a live one is CampaignRunning."""
        page = stalled(incident, now)
        if page is None or incident.fix is not request.fix:
            raise CampaignRunning(incident.incident_id)
        self.queue.enqueue(page)
        return self.show(who, incident.incident_id)

    def _get(self, incident_id: str) -> Incident:
        incident = self.incidents.get_incident(incident_id)
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    def _rows(self, links: Sequence[IncidentLink]) -> list[ChildRow]:
        tickets = self.tickets.tickets_by_id([link.ticket_id for link in links])
        rows = []
        for link in links:
            ticket = tickets.get(link.ticket_id)
            rows.append(
                ChildRow(
                    ticket_id=link.ticket_id,
                    thing=link.thing,
                    customer_id=link.customer_id,
                    region=link.region,
                    firmware=link.firmware,
                    status=ticket.status.value if ticket else "missing",
                    resolution=ticket.resolution.value if ticket and ticket.resolution else None,
                    linked_at=link.linked_at,
                    before_threshold=link.before_threshold,
                )
            )
        return rows


def _require_staff(who: Caller) -> None:
    if not who.staff:
        raise Forbidden("fleet incidents are for engineers and managers")

"""What engineers do with fleet incidents: list, show (with affected devices, firmware
versions, regions and the trend) and resolve.

Resolving sends a fix campaign to the children's devices through the diagnostics path, paced
at the policy's rate: `reset_component` runs the reset routine; `firmware_fix` (the fixed
firmware is out) runs the code's own check routine. Each device's answer decides its child
(`diagnostics_plans._fleet_fix_decision`): cleared -> resolved `fleet_fix` (parts released by
the usual status change), not cleared or no answer -> it stays open on the normal path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.diagnostics import start_diagnostic
from aftercare.domain.diagnostics_records import PublishFailed, TicketNotActive, derived_request_id
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    FixKind,
    Incident,
    IncidentPolicy,
    IncidentStats,
    IncidentStatus,
    window_of,
)
from aftercare.domain.ports import CommandPublisher, DiagnosticsStore
from aftercare.domain.ports.incidents import IncidentNotFound, IncidentReads
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import Purpose

MAX_SHOWN_CHILDREN = 1000


class IncidentAlreadyResolved(Exception):
    """The incident was resolved already (its campaign ran)."""


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
    campaign: dict[str, int] = Field(default_factory=dict)


class IncidentStore(IncidentReads, Protocol):
    def set_status(self, incident: Incident, expected: IncidentStatus) -> None: ...

    def reset_storm(self, model: str, code: str, windows: Sequence[int], shards: int) -> None: ...


class TicketBatch(Protocol):
    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]: ...


@dataclass(frozen=True)
class IncidentDesk:
    incidents: IncidentStore
    tickets: TicketBatch
    diagnostics: DiagnosticsStore
    publisher: CommandPublisher
    policy: IncidentPolicy
    pause: Callable[[float], None]

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
        )

    def resolve(
        self, who: Caller, incident_id: str, request: ResolveIncident, now: datetime
    ) -> IncidentView:
        """Mark the incident mitigating, send the fix campaign (paced), then resolve it."""
        _require_staff(who)
        incident = self._get(incident_id)
        if incident.status is IncidentStatus.RESOLVED:
            raise IncidentAlreadyResolved(incident_id)
        mitigating = incident.model_copy(
            update={
                "status": IncidentStatus.MITIGATING,
                "fix": request.fix,
                "fix_note": request.note,
                "updated_at": now,
                "resolved_by": who.actor,
            }
        )
        if incident.status is IncidentStatus.OPEN:
            self.incidents.set_status(mitigating, IncidentStatus.OPEN)
        campaign = self._campaign(mitigating, request.fix, who, now)
        resolved = mitigating.model_copy(
            update={
                "status": IncidentStatus.RESOLVED,
                "resolved_at": now,
                "updated_at": now,
                "campaign_request_id": f"fleet-{incident_id}",
            }
        )
        self.incidents.set_status(resolved, IncidentStatus.MITIGATING)
        # the storm is fixed: its counts must not reopen an incident at the next report
        minutes = self.policy.detection.window_minutes
        window = window_of(now, minutes)
        self.incidents.reset_storm(
            incident.model, incident.fault_code, [window, window - 1], self.policy.detection.shards
        )
        view = self.show(who, incident_id)
        return view.model_copy(update={"campaign": campaign})

    def _campaign(
        self, incident: Incident, fix: FixKind, who: Caller, now: datetime
    ) -> dict[str, int]:
        links = self.incidents.children(incident.incident_id, self.policy.detection.shards)
        tickets = self.tickets.tickets_by_id([link.ticket_id for link in links])
        interval = 1.0 / self.policy.resolve.campaign_per_second
        timeout = timedelta(minutes=self.policy.resolve.answer_within_minutes)
        counts: Counter[str] = Counter()
        campaign_id = f"fleet-{incident.incident_id}"
        for ticket in tickets.values():
            if not ticket.active:
                counts["already_closed"] += 1
                continue
            routine = self._routine(fix, ticket)
            try:
                start_diagnostic(
                    self.diagnostics,
                    self.publisher,
                    ticket,
                    routine=routine,
                    params=None,
                    timeout=timeout,
                    actor=who.actor,
                    purpose=Purpose.FLEET_FIX,
                    now=now,
                    request_id=derived_request_id(ticket.ticket_id, campaign_id),
                )
            except (TicketNotActive, PublishFailed):
                counts["not_sent"] += 1
                continue
            counts["sent"] += 1
            self.pause(interval)
        return dict(counts)

    def _routine(self, fix: FixKind, ticket: Ticket) -> str:
        if fix is FixKind.RESET_COMPONENT:
            return self.policy.resolve.routine
        return ticket.routine or "self_test"

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

"""An incident desk and its campaign worker on fakes: incidents, tickets (the diagnostics
fake's), a publisher, a campaign queue (a list), pauses recorded instead of slept."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from aftercare.domain.diagnostics_answers import handle_result
from aftercare.domain.incident_campaign import CampaignWorker, PageOutcome
from aftercare.domain.incident_desk import IncidentDesk
from aftercare.domain.incident_links import IncidentLink
from aftercare.domain.incidents import (
    CampaignCursor,
    CampaignPage,
    Incident,
    IncidentStats,
    IncidentStatus,
    load_incident_policy,
)
from aftercare.domain.ports.campaigns import ChildrenPage
from aftercare.domain.ports.incidents import IncidentMoved
from aftercare.domain.rules import load_catalog
from aftercare.domain.tickets import Ticket
from aftercare.models.payloads import DiagnosticsEnvelope

from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket

INCIDENT_ID = "INC-202603011200-00abcd"


class FakeIncidents:
    def __init__(self, incident: Incident, links: list[IncidentLink]) -> None:
        self.incident = incident
        self.links = links
        self.resets: list[tuple[str, str, list[int]]] = []
        self.recorded = 0

    def get_incident(self, incident_id: str) -> Incident | None:
        return self.incident if incident_id == self.incident.incident_id else None

    def incident_stats(self, incident_id: str, shards: int) -> IncidentStats:
        return IncidentStats(children=len(self.links))

    def children(
        self, incident_id: str, shards: int, limit: int | None = None
    ) -> list[IncidentLink]:
        return list(self.links)[:limit]

    def list_incidents(self, limit: int = 100) -> list[Incident]:
        return [self.incident]

    def reset_storm(self, model: str, group: str, windows: Any, shards: int) -> None:
        self.resets.append((model, group, list(windows)))

    def set_status(self, incident: Incident, expected: IncidentStatus) -> None:
        if self.incident.status is not expected:
            raise IncidentMoved(incident.incident_id)
        self.incident = incident

    def children_page(
        self, incident_id: str, cursor: CampaignCursor, limit: int, shards: int
    ) -> ChildrenPage:
        """The adapter's walk order: shard by shard, ticket id order within a shard."""
        ordered = sorted(
            (link for link in self.links if link.shard >= cursor.shard),
            key=lambda link: (link.shard, link.ticket_id),
        )
        rest = [
            link
            for link in ordered
            if link.shard > cursor.shard or cursor.after is None or link.ticket_id > cursor.after
        ]
        page = rest[:limit]
        if len(rest) <= limit:
            return ChildrenPage(page, None)
        return ChildrenPage(page, CampaignCursor(shard=page[-1].shard, after=page[-1].ticket_id))

    def record_page(self, incident: Incident, pages_done_before: int) -> None:
        current = self.incident.campaign
        if (
            self.incident.status is not IncidentStatus.MITIGATING
            or current is None
            or current.pages_done != pages_done_before
        ):
            raise IncidentMoved(incident.incident_id)
        self.incident = incident
        self.recorded += 1


class FakeCampaignQueue:
    def __init__(self) -> None:
        self.pages: list[CampaignPage] = []

    def enqueue(self, page: CampaignPage) -> None:
        self.pages.append(page)


class TicketsOf:
    def __init__(self, store: FakeDiagnosticsStore) -> None:
        self.store = store

    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]:
        return {t: self.store.tickets[t] for t in ticket_ids if t in self.store.tickets}


class IncidentWorld:
    def __init__(self, tickets: list[Ticket], *, shards: int = 1) -> None:
        self.store = FakeDiagnosticsStore(*tickets)
        self.publisher = FakePublisher()
        self.pauses: list[float] = []
        self.now = NOW
        incident = Incident(
            incident_id="INC-202603011200-00abcd",
            fault_code="IO-MODULE-FAIL",
            model="IC-300",
            opened_at=NOW,
            updated_at=NOW,
            threshold=20,
            window_minutes=10,
            devices_at_open=20,
            policy_version="test",
        )
        links = [
            IncidentLink(
                incident_id=incident.incident_id,
                ticket_id=t.ticket_id,
                thing=t.thing,
                customer_id=t.customer_id,
                region=t.region,
                firmware=t.firmware,
                shard=n % shards,
                linked_at=NOW,
            )
            for n, t in enumerate(tickets)
        ]
        self.incidents = FakeIncidents(incident, links)
        self.queue = FakeCampaignQueue()
        policy = load_incident_policy()
        self.desk = IncidentDesk(
            incidents=self.incidents,
            tickets=TicketsOf(self.store),
            queue=self.queue,
            policy=policy,
        )
        self.worker = CampaignWorker(
            incidents=self.incidents,
            tickets=TicketsOf(self.store),
            diagnostics=self.store,
            publisher=self.publisher,
            queue=self.queue,
            policy=policy,
            pause=self.sleep,
            clock=lambda: self.now,
        )

    def sleep(self, seconds: float) -> None:
        """A pause recorded, and the fake clock moved on by it."""
        self.pauses.append(seconds)
        self.now += timedelta(seconds=seconds)

    def run_campaign(self) -> list[PageOutcome]:
        """Deliver the queued pages, in order, until the queue is empty (as the worker would)."""
        outcomes = []
        while self.queue.pages:
            outcomes.append(self.worker.run_page(self.queue.pages.pop(0), NOW))
        return outcomes

    def answer(self, thing: str, request_id: str, **result: Any) -> None:
        payload = {
            "request_id": request_id,
            "status": result.pop("status", "passed"),
            "findings": result.pop("findings", {}),
            "remedied": result.pop("remedied", False),
            "completed_at": NOW.isoformat(),
        }
        envelope = DiagnosticsEnvelope(
            payload_b64=base64.b64encode(json.dumps(payload).encode()).decode(),
            thing=thing,
            received_at=int(NOW.timestamp() * 1000),
            topic=f"cmd/aftercare/{thing}/diagnostics/res",
        )
        handle_result(
            envelope, store=self.store, publisher=self.publisher, catalog=load_catalog(), now=NOW
        )


def children(n: int, **extra: Any) -> list[Ticket]:
    return [
        make_ticket(
            "IO-MODULE-FAIL",
            thing=f"ic-300-{i:04d}",
            model="IC-300",
            incident_id="INC-202603011200-00abcd",
            **extra,
        )
        for i in range(n)
    ]

"""Resolving a fleet incident: the paced campaign through the diagnostics path, and what each
device's answer does to its child (fakes)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.diagnostics_answers import handle_result
from aftercare.domain.incident_desk import (
    IncidentAlreadyResolved,
    IncidentDesk,
    ResolveIncident,
)
from aftercare.domain.incidents import (
    Incident,
    IncidentLink,
    IncidentStats,
    IncidentStatus,
    load_incident_policy,
)
from aftercare.domain.ports.incidents import IncidentMoved, IncidentNotFound
from aftercare.domain.rules import load_catalog
from aftercare.domain.tickets import Ticket
from aftercare.models.diagnostics import Purpose
from aftercare.models.payloads import DiagnosticsEnvelope
from aftercare.models.tickets import Resolution, TicketStatus
from pydantic import ValidationError

from tests.fakes.diagnostics import NOW, FakeDiagnosticsStore, FakePublisher, make_ticket

ENGINEER = Caller(subject="s", username="ada", groups=frozenset({"engineers"}))
CUSTOMER = Caller(subject="c", username="c", groups=frozenset({"customers"}), customer_id="c-1")


class FakeIncidents:
    def __init__(self, incident: Incident, links: list[IncidentLink]) -> None:
        self.incident = incident
        self.links = links

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

    def set_status(self, incident: Incident, expected: IncidentStatus) -> None:
        if self.incident.status is not expected:
            raise IncidentMoved(incident.incident_id)
        self.incident = incident


class TicketsOf:
    def __init__(self, store: FakeDiagnosticsStore) -> None:
        self.store = store

    def tickets_by_id(self, ticket_ids: list[str]) -> dict[str, Ticket]:
        return {t: self.store.tickets[t] for t in ticket_ids if t in self.store.tickets}


class World:
    def __init__(self, tickets: list[Ticket]) -> None:
        self.store = FakeDiagnosticsStore(*tickets)
        self.publisher = FakePublisher()
        self.pauses: list[float] = []
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
                shard=0,
                linked_at=NOW,
            )
            for t in tickets
        ]
        self.incidents = FakeIncidents(incident, links)
        self.desk = IncidentDesk(
            incidents=self.incidents,
            tickets=TicketsOf(self.store),
            diagnostics=self.store,
            publisher=self.publisher,
            policy=load_incident_policy(),
            pause=self.pauses.append,
        )

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


def test_a_reset_campaign_is_sent_to_each_active_child_paced():
    # Given 5 children, one already resolved on its own
    tickets = children(5)
    tickets[0] = tickets[0].model_copy(update={"status": TicketStatus.RESOLVED})
    world = World(tickets)
    # When an engineer resolves the incident with a reset campaign
    view = world.desk.resolve(
        ENGINEER, "INC-202603011200-00abcd", ResolveIncident(fix="reset_component"), NOW
    )
    # Then the 4 active children's devices got reset_component, paced at the policy's rate
    assert sorted(thing for thing, _ in world.publisher.published) == [
        f"ic-300-{i:04d}" for i in range(1, 5)
    ]
    assert {r.routine for _, r in world.publisher.published} == {"reset_component"}
    rate = load_incident_policy().resolve.campaign_per_second
    assert world.pauses == [pytest.approx(1 / rate)] * 4
    assert view.campaign == {"sent": 4, "already_closed": 1}
    assert view.incident.status is IncidentStatus.RESOLVED
    records = [r for t in tickets for r in world.store.for_ticket(t.ticket_id)]
    assert {r.purpose for r in records} == {Purpose.FLEET_FIX}


def test_a_confirmed_child_resolves_fleet_fix_and_an_unconfirmed_one_stays_open():
    tickets = children(2)
    world = World(tickets)
    world.desk.resolve(
        ENGINEER, "INC-202603011200-00abcd", ResolveIncident(fix="reset_component"), NOW
    )
    (first, second) = (world.publisher.published[0][1], world.publisher.published[1][1])
    # When the first device's reset cleared the fault and the second's did not
    world.answer(tickets[0].thing, first.request_id, remedied=True)
    world.answer(
        tickets[1].thing,
        second.request_id,
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
    world = World(children(1, routine="self_test"))
    note = ResolveIncident(fix="firmware_fix", note="2.4.1 fixes the I/O hang")
    view = world.desk.resolve(ENGINEER, "INC-202603011200-00abcd", note, NOW)
    assert [r.routine for _, r in world.publisher.published] == ["self_test"]
    assert view.incident.fix_note == "2.4.1 fixes the I/O hang"


def test_resolving_twice_customers_and_unknown_ids_are_refused():
    world = World(children(1))
    request = ResolveIncident(fix="reset_component")
    with pytest.raises(Forbidden):
        world.desk.resolve(CUSTOMER, "INC-202603011200-00abcd", request, NOW)
    with pytest.raises(Forbidden):
        world.desk.show(CUSTOMER, "INC-202603011200-00abcd")
    with pytest.raises(IncidentNotFound):
        world.desk.show(ENGINEER, "INC-202603011200-ffffff")
    world.desk.resolve(ENGINEER, "INC-202603011200-00abcd", request, NOW)
    with pytest.raises(IncidentAlreadyResolved):
        world.desk.resolve(ENGINEER, "INC-202603011200-00abcd", request, NOW + timedelta(1))

"""Resolving a fleet incident: the paced campaign through the diagnostics path, and what each
device's answer does to its child (fakes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.incident_desk import (
    IncidentAlreadyResolved,
    ResolveIncident,
)
from aftercare.domain.incidents import (
    IncidentStatus,
    load_incident_policy,
)
from aftercare.domain.ports.incidents import IncidentNotFound
from aftercare.models.diagnostics import Purpose
from aftercare.models.tickets import Resolution, TicketStatus
from pydantic import ValidationError

from tests.fakes.diagnostics import NOW
from tests.fakes.incidents import IncidentWorld, children

ENGINEER = Caller(subject="s", username="ada", groups=frozenset({"engineers"}))
CUSTOMER = Caller(subject="c", username="c", groups=frozenset({"customers"}), customer_id="c-1")


def test_a_reset_campaign_is_sent_to_each_active_child_paced():
    # Given 5 children, one already resolved on its own
    tickets = children(5)
    tickets[0] = tickets[0].model_copy(update={"status": TicketStatus.RESOLVED})
    world = IncidentWorld(tickets)
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
    # and the storm's counters were zeroed (this window and the one before)
    ((model, group, windows),) = world.incidents.resets
    assert (model, group, len(windows)) == ("IC-300", "code=IO-MODULE-FAIL", 2)
    records = [r for t in tickets for r in world.store.for_ticket(t.ticket_id)]
    assert {r.purpose for r in records} == {Purpose.FLEET_FIX}


def test_a_confirmed_child_resolves_fleet_fix_and_an_unconfirmed_one_stays_open():
    tickets = children(2)
    world = IncidentWorld(tickets)
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
    world = IncidentWorld(children(1, routine="self_test"))
    note = ResolveIncident(fix="firmware_fix", note="2.4.1 fixes the I/O hang")
    view = world.desk.resolve(ENGINEER, "INC-202603011200-00abcd", note, NOW)
    assert [r.routine for _, r in world.publisher.published] == ["self_test"]
    assert view.incident.fix_note == "2.4.1 fixes the I/O hang"


def test_resolving_twice_customers_and_unknown_ids_are_refused():
    world = IncidentWorld(children(1))
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

"""Dispatch: when a ticket needs a visit, the hard rules that decide who may go, and the score
that decides who is asked first (weights from data/dispatch.yaml)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aftercare.domain.dispatch import (
    DispatchJob,
    DispatchTrigger,
    EngineerContext,
    FirstTimeFix,
    auto_books,
    dispatch_trigger,
    find_candidates,
    job_for,
    parts_ready_at,
)
from aftercare.domain.dispatch_policy import DispatchPolicy, load_dispatch_policy
from aftercare.domain.rules import load_catalog
from aftercare.models.field import Absence, EngineerKind, GeoPoint, Skill
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.tickets import TicketFlag, TicketStatus

from tests.fakes.diagnostics import make_ticket
from tests.fakes.dispatch import DUBLIN, MONDAY, booking, engineer, partner

POLICY = load_dispatch_policy()


def job(**overrides: Any) -> DispatchJob:
    fields: dict[str, Any] = {
        "ticket_id": "T-AAAA",
        "customer_id": "c-1",
        "thing": "ac-1",
        "model": "AC-HP",
        "category": "power",
        "fault_code": "PSU-OVERVOLT",
        "region": "eu-west",
        "priority": "P2",
        "tier": "standard",
        "location": DUBLIN,
        "sla_due": MONDAY + timedelta(hours=48),
        "parts_ready_at": MONDAY,
    }
    fields.update(overrides)
    return DispatchJob(**fields)


def policy_with(**score: float) -> DispatchPolicy:
    return POLICY.model_copy(update={"score": POLICY.score.model_copy(update=score)})


def ids(
    contexts: list[EngineerContext], j: DispatchJob, policy: DispatchPolicy = POLICY
) -> list[str]:
    return [c.engineer_id for c in find_candidates(j, contexts, policy, MONDAY).candidates]


# ---------------------------------------------------------------- when a ticket is dispatchable


def test_a_flagged_active_ticket_is_dispatchable() -> None:
    ticket = make_ticket(flags=[TicketFlag.NEEDS_ONSITE_DISPATCH])
    assert dispatch_trigger(ticket, always_onsite=False) is DispatchTrigger.FLAGGED


def test_a_catalog_code_that_always_needs_a_visit_is_dispatchable_without_a_flag() -> None:
    entry = load_catalog().lookup("REFRIG-LOWPRESS")
    assert entry is not None and entry.always_onsite
    assert dispatch_trigger(make_ticket(), always_onsite=True) is DispatchTrigger.CATALOG


@pytest.mark.parametrize("status", [TicketStatus.IN_REPAIR, TicketStatus.RESOLVED])
def test_a_ticket_under_repair_or_closed_is_not_dispatched_again(status: TicketStatus) -> None:
    ticket = make_ticket(status=status, flags=[TicketFlag.NEEDS_ONSITE_DISPATCH])
    assert dispatch_trigger(ticket, always_onsite=True) is None


def test_an_unflagged_remote_fixable_ticket_is_not_dispatchable() -> None:
    assert dispatch_trigger(make_ticket(), always_onsite=False) is None


# ---------------------------------------------------------------- parts-aware


def line(status: LineStatus, sku: str = "PSU-240-A", reserved: datetime = MONDAY) -> PartsLine:
    return PartsLine(
        reservation_id=f"R-{sku}",
        sku=sku,
        name_en=sku,
        name_zh=sku,
        qty=1,
        warehouse="WH-DUB",
        unit_price=1.0,
        currency="EUR",
        status=status,
        reserved_at=reserved,
    )


def test_held_parts_are_ready_now_and_a_backorder_when_its_lead_time_has_passed() -> None:
    now = MONDAY
    assert parts_ready_at([line(LineStatus.HELD)], {"PSU-240-A": 10}, now) == now
    ready = parts_ready_at(
        [line(LineStatus.HELD), line(LineStatus.BACKORDERED, reserved=now - timedelta(days=8))],
        {"PSU-240-A": 10},
        now,
    )
    assert ready == now + timedelta(days=2)


def test_no_visit_is_offered_before_the_backordered_part_is_expected() -> None:
    # Given a part expected Wednesday noon
    arrival = MONDAY + timedelta(days=2, hours=5)
    j = job(parts_ready_at=arrival, sla_due=MONDAY + timedelta(days=5))
    # When candidates are found
    found = find_candidates(j, [EngineerContext(engineer=engineer())], POLICY, MONDAY)
    # Then the visit starts after the arrival
    assert found.candidates[0].start >= arrival


def test_job_for_a_ticket_takes_the_sla_and_the_backorder_and_falls_back_to_the_region_centre() -> (
    None
):
    ticket = make_ticket(parts=[line(LineStatus.BACKORDERED, reserved=MONDAY)])
    j = job_for(ticket, policy=POLICY, lead_days={"PSU-240-A": 3}, now=MONDAY)
    assert j.parts_ready_at == MONDAY + timedelta(days=3)
    assert j.sla_due == ticket.sla_resolution_due
    assert j.location == POLICY.travel.region_centres["eu-west"]


# ---------------------------------------------------------------- hard rules


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"active": False}, "inactive"),
        ({"regions": ["eu-central"]}, "region"),
        ({"skills": [Skill(model="RT-X", category="*", level=3)]}, "skill_below_1"),
        ({"skills": [Skill(model="*", category="thermal", level=3)]}, "skill_below_1"),
        ({"home": GeoPoint(lat=48.85, lon=2.35)}, "too_far"),  # Paris, for a Dublin visit
    ],
)
def test_an_engineer_failing_a_hard_rule_is_never_a_candidate(
    overrides: dict[str, Any], reason: str
) -> None:
    found = find_candidates(
        job(), [EngineerContext(engineer=engineer(**overrides))], POLICY, MONDAY
    )
    assert found.candidates == []
    assert found.rejected == {"E-ann": reason}


def test_a_p1_visit_needs_a_level_two_engineer() -> None:
    junior = engineer("E-jun", skills=[Skill(level=1)])
    senior = engineer("E-sen", skills=[Skill(level=2)])
    contexts = [EngineerContext(engineer=junior), EngineerContext(engineer=senior)]
    assert ids(contexts, job(priority="P1")) == ["E-sen"]
    assert set(ids(contexts, job(priority="P3"))) == {"E-jun", "E-sen"}


def test_a_partner_engineer_needs_a_contract_covering_the_region() -> None:
    eng = engineer("E-ptn", kind=EngineerKind.PARTNER, partner="PTN-west")
    outside = EngineerContext(engineer=eng, partner=partner(regions=["us-east"]))
    unknown = EngineerContext(engineer=eng)
    found = find_candidates(job(), [outside], POLICY, MONDAY)
    assert found.rejected == {"E-ptn": "partner_contract"}
    assert find_candidates(job(), [unknown], POLICY, MONDAY).rejected == {
        "E-ptn": "partner_unknown"
    }


def test_the_visit_fits_working_hours_travel_bookings_and_absences() -> None:
    # Given an engineer absent Monday morning and booked 14:00-16:00
    absent = Absence(start=MONDAY, end=MONDAY.replace(hour=12))
    busy = booking("E-ann", MONDAY.replace(hour=14), minutes=120)
    ctx = EngineerContext(engineer=engineer(absences=[absent]), bookings=(busy,))
    # When a 90-minute visit (power, data/calendar.yaml) is placed
    found = find_candidates(job(), [ctx], POLICY, MONDAY).candidates[0]
    # Then it is the first window after the absence, on the slot grid, before the booking
    assert found.start == MONDAY.replace(hour=12)
    assert found.end == MONDAY.replace(hour=13, minute=30)


def test_a_visit_that_does_not_fit_before_a_booking_goes_after_it() -> None:
    # Given the engineer is free only 12:00-13:00 before a booking until 15:00
    absent = Absence(start=MONDAY, end=MONDAY.replace(hour=12))
    busy = booking("E-ann", MONDAY.replace(hour=13), minutes=120)
    ctx = EngineerContext(engineer=engineer(absences=[absent]), bookings=(busy,))
    # Then the 90-minute visit starts when the booking ends
    assert find_candidates(job(), [ctx], POLICY, MONDAY).candidates[0].start == MONDAY.replace(
        hour=15
    )


def test_a_visit_that_cannot_end_before_the_sla_deadline_is_refused() -> None:
    # Given a deadline before the shift starts (Dublin in December is UTC)
    j = job(sla_due=MONDAY + timedelta(minutes=90))
    found = find_candidates(j, [EngineerContext(engineer=engineer())], POLICY, MONDAY)
    assert found.rejected == {"E-ann": "no_window_inside_sla"}


def test_a_partner_at_its_daily_cap_is_offered_the_next_day() -> None:
    eng = engineer("E-ptn", kind=EngineerKind.PARTNER, partner="PTN-west")
    ctx = EngineerContext(
        engineer=eng, partner=partner(daily_job_cap=2), partner_visits={date(2026, 12, 7): 2}
    )
    found = find_candidates(job(), [ctx], POLICY, MONDAY).candidates[0]
    assert found.start.date() == date(2026, 12, 8)


# ---------------------------------------------------------------- the score


def test_in_house_engineers_come_before_partners_unless_the_region_says_otherwise() -> None:
    own = EngineerContext(engineer=engineer("E-own"))
    ptn = EngineerContext(
        engineer=engineer("E-ptn", kind=EngineerKind.PARTNER, partner="PTN-west"),
        partner=partner(cost_per_visit=40),
    )
    assert ids([ptn, own], job()) == ["E-own", "E-ptn"]
    partner_first = POLICY.model_copy(
        update={"partners": POLICY.partners.model_copy(update={"first_in_regions": ["eu-west"]})}
    )
    assert ids([ptn, own], job(), partner_first) == ["E-ptn", "E-own"]


def test_partners_allowed_by_sla_escalation_compete_without_the_in_house_preference() -> None:
    # Given an in-house engineer booked all Monday and a partner free on Monday
    busy = [booking("E-own", MONDAY + timedelta(hours=1), minutes=9 * 60)]
    own = EngineerContext(engineer=engineer("E-own"), bookings=tuple(busy))
    ptn = EngineerContext(
        engineer=engineer("E-ptn", kind=EngineerKind.PARTNER, partner="PTN-west"),
        partner=partner(cost_per_visit=40),
    )
    # When the ticket is dispatched normally, in-house comes first despite the later visit
    assert ids([ptn, own], job()) == ["E-own", "E-ptn"]
    # Then once SLA escalation allowed partners, the partner's earlier visit wins
    escalated = job(partners_allowed=True)
    found = find_candidates(escalated, [ptn, own], POLICY, MONDAY).candidates
    assert [c.engineer_id for c in found] == ["E-ptn", "E-own"]
    assert [c.terms.partner for c in found if c.terms] == [0.0, 0.0]


def test_the_partners_allowed_flag_reaches_the_dispatch_job() -> None:
    flagged = make_ticket(flags=[TicketFlag.NEEDS_ONSITE_DISPATCH, TicketFlag.PARTNERS_ALLOWED])
    assert job_for(flagged, policy=POLICY, lead_days={}, now=MONDAY).partners_allowed
    assert not job_for(make_ticket(), policy=POLICY, lead_days={}, now=MONDAY).partners_allowed


def test_the_nearer_engineer_ranks_first_by_travel() -> None:
    near = EngineerContext(engineer=engineer("E-near", home=GeoPoint(lat=53.36, lon=-6.25)))
    far = EngineerContext(engineer=engineer("E-far", home=GeoPoint(lat=53.9, lon=-6.9)))
    found = find_candidates(job(), [far, near], POLICY, MONDAY).candidates
    assert [c.engineer_id for c in found] == ["E-near", "E-far"]
    assert found[0].terms.travel_km < found[1].terms.travel_km


def test_the_less_loaded_engineer_ranks_first_when_all_else_is_equal() -> None:
    # Given two engineers free from noon, one of them also booked late in the afternoon
    morning = booking("E-idle", MONDAY.replace(hour=8), 240)
    idle = EngineerContext(engineer=engineer("E-idle"), bookings=(morning,))
    busy = EngineerContext(
        engineer=engineer("E-busy"),
        bookings=(
            booking("E-busy", MONDAY.replace(hour=8), 240),
            booking("E-busy", MONDAY.replace(hour=15), 120),
        ),
    )
    # When candidates are scored
    found = find_candidates(job(), [busy, idle], POLICY, MONDAY).candidates
    # Then both could start at noon and the load term puts the less loaded one first
    assert {c.start for c in found} == {MONDAY.replace(hour=12)}
    assert [c.engineer_id for c in found] == ["E-idle", "E-busy"]
    assert found[0].terms.load < found[1].terms.load


def test_a_strong_first_time_fix_record_ranks_first() -> None:
    good = EngineerContext(engineer=engineer("E-good"), ftf=FirstTimeFix(visits=20, fixed=19))
    poor = EngineerContext(engineer=engineer("E-poor"), ftf=FirstTimeFix(visits=20, fixed=8))
    assert ids([poor, good], job()) == ["E-good", "E-poor"]


def test_a_customers_preferred_engineer_ranks_first() -> None:
    # (the job names preferred engineers only when the tier's treatment asks: dispatching)
    a = EngineerContext(engineer=engineer("E-a"))
    b = EngineerContext(engineer=engineer("E-b"))
    assert ids([a, b], job(tier="vip", preferred_engineers=("E-b",))) == ["E-b", "E-a"]
    assert ids([a, b], job(tier="vip")) == ["E-a", "E-b"]


def test_an_earlier_visit_ranks_first_by_sla_slack() -> None:
    free = EngineerContext(engineer=engineer("E-free"))
    late = EngineerContext(
        engineer=engineer("E-late"), bookings=(booking("E-late", MONDAY.replace(hour=8), 480),)
    )
    found = find_candidates(job(), [late, free], POLICY, MONDAY).candidates
    assert [c.engineer_id for c in found] == ["E-free", "E-late"]
    assert found[0].terms.sla_used < found[1].terms.sla_used


def test_every_weight_comes_from_the_data_file() -> None:
    # Given a policy that values cost above everything
    cheap = EngineerContext(engineer=engineer("E-cheap", cost_per_visit=10))
    dear = EngineerContext(engineer=engineer("E-dear", cost_per_visit=400))
    assert ids([dear, cheap], job(), policy_with(cost=10)) == ["E-cheap", "E-dear"]
    # and one that ignores cost
    flat = policy_with(cost=0)
    scores = {
        c.engineer_id: c.score
        for c in find_candidates(job(), [dear, cheap], flat, MONDAY).candidates
    }
    assert scores["E-cheap"] == scores["E-dear"]


@pytest.mark.parametrize(
    ("priority", "tier", "auto"),
    [("P1", "standard", True), ("P3", "vip", True), ("P2", "standard", False)],
)
def test_p1_and_vip_tickets_are_booked_automatically(priority: str, tier: str, auto: bool) -> None:
    assert auto_books(job(priority=priority, tier=tier), POLICY) is auto


def test_now_is_never_in_the_past_of_a_candidate() -> None:
    now = datetime(2026, 12, 7, 10, 7, tzinfo=UTC)
    found = find_candidates(job(), [EngineerContext(engineer=engineer())], POLICY, now)
    assert found.candidates[0].start >= now
    assert found.candidates[0].start.minute % POLICY.visit.slot_step_min == 0

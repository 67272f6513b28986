"""The day planner: greedy insertion keeps confirmed bookings pinned, respects the hard rules
and the working day, and the improvement step never loses a placed visit."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aftercare.domain.dispatch import DispatchJob, EngineerContext
from aftercare.domain.dispatch_plan import Planner
from aftercare.domain.dispatch_policy import load_dispatch_policy
from aftercare.models.field import GeoPoint

from infra.bench.dispatch import engineers as bench_engineers
from infra.bench.dispatch import visits as bench_visits
from tests.fakes.dispatch import DUBLIN, MONDAY, booking, engineer

POLICY = load_dispatch_policy()
DAY = date(2026, 12, 7)


def job(n: int, **overrides: Any) -> DispatchJob:
    fields: dict[str, Any] = {
        "ticket_id": f"T-PLAN{n:04d}",
        "customer_id": f"c-{n}",
        "thing": f"ac-{n}",
        "model": "AC-HP",
        "category": "power",  # 60 minutes
        "fault_code": "PSU-OVERVOLT",
        "region": "eu-west",
        "priority": "P3",
        "tier": "standard",
        "location": GeoPoint(lat=DUBLIN.lat + 0.01 * n, lon=DUBLIN.lon),
        "sla_due": MONDAY + timedelta(days=3),
        "parts_ready_at": MONDAY,
    }
    fields.update(overrides)
    return DispatchJob(**fields)


def test_confirmed_bookings_stay_where_they_are() -> None:
    # Given an engineer with a confirmed visit 10:00-11:00
    pinned = booking("E-ann", datetime(2026, 12, 7, 10, tzinfo=UTC))
    planner = Planner(DAY, [EngineerContext(engineer=engineer(), bookings=(pinned,))], POLICY)
    # When four one-hour visits are planned around it
    plan = planner.plan([job(n) for n in range(4)])
    # Then none overlaps the pinned hour, and none overlaps another
    spans = sorted((v.start, v.end) for v in plan.visits)
    assert len(spans) == 4
    assert all(not (s < pinned.end and pinned.start < e) for s, e in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_a_full_day_leaves_the_rest_unassigned_with_a_reason() -> None:
    # Given one engineer (9 working hours) and twelve one-hour visits
    planner = Planner(DAY, [EngineerContext(engineer=engineer())], POLICY)
    plan = planner.plan([job(n) for n in range(12)])
    # Then what fits is placed inside the working day and the rest is reported
    assert 0 < len(plan.visits) < 12
    assert len(plan.visits) + len(plan.unassigned) == 12
    assert all(v.end <= datetime(2026, 12, 7, 17, tzinfo=UTC) for v in plan.visits)
    assert set(plan.unassigned.values()) == {"no_feasible_insertion"}


def test_hard_rules_hold_in_the_plan() -> None:
    # Given a visit in a region nobody covers
    planner = Planner(DAY, [EngineerContext(engineer=engineer())], POLICY)
    plan = planner.plan([job(1, region="us-east")])
    assert plan.visits == [] and list(plan.unassigned) == ["T-PLAN0001"]


def test_a_visit_waits_for_its_parts() -> None:
    arrival = datetime(2026, 12, 7, 14, tzinfo=UTC)
    planner = Planner(DAY, [EngineerContext(engineer=engineer())], POLICY)
    plan = planner.plan([job(1, parts_ready_at=arrival)])
    assert plan.visits[0].start >= arrival


def test_improvement_keeps_every_placed_visit_and_its_pins() -> None:

    rng = random.Random(3)
    team = bench_engineers(rng, 12, POLICY, DAY)
    jobs = bench_visits(rng, 90, POLICY, DAY)
    planner = Planner(DAY, team, POLICY)
    greedy = planner.plan(jobs)
    improved = planner.improve()
    assert len(improved.visits) >= len(greedy.visits)
    by_engineer: dict[str, list[tuple[datetime, datetime]]] = {}
    for v in improved.visits:
        by_engineer.setdefault(v.engineer_id, []).append((v.start, v.end))
    for ctx in team:
        spans = sorted(
            by_engineer.get(ctx.engineer.engineer_id, []) + [(b.start, b.end) for b in ctx.bookings]
        )
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))

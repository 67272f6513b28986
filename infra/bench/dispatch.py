"""Dispatch quality benchmark (not a test): a synthetic, seeded day of visits across engineers,
planned by greedy insertion and (optionally) greedy + the local-search improvement step.

Prints a table (share assigned, share inside SLA, travel estimate, time to plan) and writes
`bench/dispatch.json`. `make bench-dispatch` (BENCH_DISPATCH_VISITS, BENCH_DISPATCH_ENGINEERS,
BENCH_DISPATCH_SEED override the defaults 1000, 100, 7).
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

from aftercare.domain.dispatch import DispatchJob, EngineerContext, FirstTimeFix
from aftercare.domain.dispatch_plan import DayPlan, Planner
from aftercare.domain.dispatch_policy import DispatchPolicy, load_dispatch_policy
from aftercare.models.field import (
    Booking,
    BookingSource,
    BookingStatus,
    Engineer,
    EngineerKind,
    GeoPoint,
    Partner,
    Shift,
    Skill,
    Weekday,
)

MODELS = ["AC-HP", "RT-X", "EV-CH", "IC-300"]
CATEGORIES = ["power", "thermal", "refrigeration", "safety", "connectivity", "sensor"]
REGION_ZONES = {"eu-west": "UTC", "eu-central": "UTC", "ap-east": "UTC", "us-east": "UTC"}
SPREAD_DEG = 0.2  # a metro area: up to ~20 km from the region's centre
OUT = Path("bench/dispatch.json")


def _near(rng: random.Random, centre: GeoPoint) -> GeoPoint:
    return GeoPoint(
        lat=centre.lat + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
        lon=centre.lon + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
    )


def engineers(
    rng: random.Random, n: int, policy: DispatchPolicy, day: date
) -> list[EngineerContext]:
    regions = list(REGION_ZONES)
    partner = Partner(
        partner_id="PTN-bench",
        name="Bench partner",
        regions=regions,
        daily_job_cap=10_000,
        cost_per_visit=90,
        promised_response_h=24,
    )
    hours = {d: [Shift(start=clock(8), end=clock(17))] for d in Weekday}
    out = []
    for i in range(n):
        region = regions[i % len(regions)]
        is_partner = i % 10 == 9
        skills = [
            Skill(model=m, category="*", level=rng.choice([1, 2, 2, 3]))
            for m in rng.sample(MODELS, k=rng.choice([2, 3, 4]))
        ]
        engineer = Engineer(
            engineer_id=f"E-b{i:03d}",
            name=f"Engineer {i}",
            kind=EngineerKind.PARTNER if is_partner else EngineerKind.IN_HOUSE,
            partner=partner.partner_id if is_partner else None,
            skills=skills,
            regions=[region],
            home=_near(rng, policy.travel.region_centres[region]),
            time_zone=REGION_ZONES[region],
            working_hours=hours,
            cost_per_visit=40,
        )
        bookings = tuple(_pinned(rng, engineer, day)) if i % 4 == 0 else ()
        ftf = FirstTimeFix(visits=rng.randint(0, 20))
        ftf = FirstTimeFix(visits=ftf.visits, fixed=rng.randint(0, ftf.visits))
        out.append(
            EngineerContext(
                engineer=engineer,
                partner=partner if is_partner else None,
                bookings=bookings,
                ftf=ftf,
            )
        )
    return out


def _pinned(rng: random.Random, engineer: Engineer, day: date) -> list[Booking]:
    """A confirmed booking in the morning: the planner must keep it where it is."""
    start = datetime.combine(day, clock(rng.choice([9, 10, 11])), tzinfo=UTC)
    return [
        Booking(
            booking_id=f"B-pin-{engineer.engineer_id}",
            ticket_id="T-PINNED",
            engineer_id=engineer.engineer_id,
            customer_id="C-pinned",
            thing="pinned",
            region=engineer.regions[0],
            start=start,
            end=start + timedelta(hours=1),
            time_zone="UTC",
            status=BookingStatus.SCHEDULED,
            source=BookingSource.CUSTOMER,
            created_at=start - timedelta(days=1),
            updated_at=start - timedelta(days=1),
            created_by="bench",
        )
    ]


def visits(rng: random.Random, n: int, policy: DispatchPolicy, day: date) -> list[DispatchJob]:
    day_start = datetime.combine(day, clock(0), tzinfo=UTC)
    out = []
    for i in range(n):
        region = list(REGION_ZONES)[i % len(REGION_ZONES)]
        priority = rng.choices(["P1", "P2", "P3", "P4"], weights=[1, 3, 4, 2])[0]
        due_h = {"P1": rng.uniform(11, 16), "P2": rng.uniform(14, 30), "P3": 72, "P4": 120}
        parts_h = rng.choice([0, 0, 0, 0, 11, 13])  # a backorder arriving late morning
        out.append(
            DispatchJob(
                ticket_id=f"T-BENCH{i:05d}",
                customer_id=f"C-{i}",
                thing=f"thing-{i}",
                model=rng.choice(MODELS),
                category=rng.choices(CATEGORIES, weights=[3, 2, 1, 1, 3, 3])[0],
                fault_code="BENCH",
                region=region,
                priority=priority,
                tier=rng.choices(["standard", "vip"], weights=[9, 1])[0],
                location=_near(rng, policy.travel.region_centres[region]),
                sla_due=day_start + timedelta(hours=due_h[priority]),
                parts_ready_at=day_start + timedelta(hours=parts_h),
            )
        )
    return out


def demand_hours(jobs: list[DispatchJob], policy: DispatchPolicy) -> float:
    return sum(policy.visit.duration(j.category).total_seconds() for j in jobs) / 3600


def summarise(
    name: str, plan: DayPlan, jobs: list[DispatchJob], seconds: float, capacity_h: float
) -> dict[str, object]:
    total = len(jobs)
    inside = sum(1 for v in plan.visits if not v.late)
    on_site_h = sum((v.end - v.start).total_seconds() for v in plan.visits) / 3600
    travel_h = plan.travel_km / load_dispatch_policy().travel.speed_kmh
    return {
        "planner": name,
        "visits": total,
        "demand_h": round(demand_hours(jobs, load_dispatch_policy()), 1),
        "capacity_h": round(capacity_h, 1),
        "assigned": len(plan.visits),
        "share_assigned": round(len(plan.visits) / total, 4),
        "share_inside_sla": round(inside / total, 4),
        "late_visits": len(plan.visits) - inside,
        "travel_km": plan.travel_km,
        "utilisation": round((on_site_h + travel_h) / capacity_h, 3),
        "km_per_visit": round(plan.travel_km / max(len(plan.visits), 1), 2),
        "plan_seconds": round(seconds, 3),
    }


def run(n_visits: int, n_engineers: int, seed: int, improve: bool) -> list[dict[str, object]]:
    policy = load_dispatch_policy()
    day = date(2026, 12, 7)  # a Monday
    rows = []
    modes = [("greedy", False), ("greedy+improve", True)] if improve else [("greedy", False)]
    for name, improving in modes:
        rng = random.Random(seed)
        team = engineers(rng, n_engineers, policy, day)
        jobs = visits(rng, n_visits, policy, day)
        began, began_cpu = time.perf_counter(), time.process_time()
        planner = Planner(day, team, policy)
        plan = planner.plan(jobs)
        if improving:
            plan = planner.improve()
        seconds = time.perf_counter() - began
        cpu = time.process_time() - began_cpu
        capacity = sum(r.day_end - r.day_start for r in planner.routes) / 60
        rows.append(
            summarise(name, plan, jobs, seconds, capacity) | {"plan_cpu_seconds": round(cpu, 3)}
        )
    return rows


def main() -> None:
    n_visits = int(os.environ.get("BENCH_DISPATCH_VISITS", "1000"))
    n_engineers = int(os.environ.get("BENCH_DISPATCH_ENGINEERS", "100"))
    seed = int(os.environ.get("BENCH_DISPATCH_SEED", "7"))
    rows = run(n_visits, n_engineers, seed, improve=True)
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[h]) for h in header))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "seed": seed,
                "engineers": n_engineers,
                "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "results": rows,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

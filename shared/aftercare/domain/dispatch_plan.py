"""A day's plan: many visits across many engineers at once (the batch side of dispatch).

Greedy insertion (the baseline): visits are taken most urgent first (resolution deadline, then
priority); each goes to the engineer and the position in their route where it adds the least
to the score (`aftercare.domain.dispatch`'s terms: travel added, SLA used, load, first-time
fix, cost, partner), among engineers who pass the hard rules. A route starts and ends at the
engineer's home; travel between stops is estimated from their locations. Confirmed bookings
and absences are **pinned**: they keep their times, and an insertion that would move one is
infeasible. A visit may end after its deadline only when no engineer can make it in time (a
late visit beats none): `late_hour_penalty` per hour late.

`improve` is an optional local-search step (relocate one visit to its best other place, then
retry the unassigned); the benchmark (`make bench-dispatch`) says whether it pays.

Times are minutes from the day's start (UTC midnight) inside the planner, for speed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from aftercare.domain.dispatch import (
    DispatchJob,
    EngineerContext,
    ftf_shortfall,
    live_intervals,
    static_rule_failure,
)
from aftercare.domain.dispatch_policy import DispatchPolicy
from aftercare.domain.dispatch_time import EARTH_RADIUS_KM, working_intervals
from aftercare.models.field import EngineerKind

LATE_HOUR_PENALTY = 200.0
INFEASIBLE = math.inf


@dataclass
class Stop:
    """A visit in a route: a job to place, or a pinned block (booking or absence)."""

    key: str
    lat: float  # radians; NaN for a block that has no place (an absence)
    lon: float
    duration: float
    not_before: float = 0.0
    due: float = INFEASIBLE
    pinned_start: float | None = None
    job: DispatchJob | None = None


@dataclass
class Route:
    ctx: EngineerContext
    day_start: float
    day_end: float
    home_lat: float
    home_lon: float
    fixed_terms: float  # the score terms that do not depend on the position (cost, partner)
    stops: list[Stop] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedVisit:
    ticket_id: str
    engineer_id: str
    start: datetime
    end: datetime
    late: bool


@dataclass
class DayPlan:
    visits: list[PlannedVisit]
    unassigned: dict[str, str]
    travel_km: float


@dataclass(frozen=True)
class _Insertion:
    cost: float
    route: int
    position: int
    starts: list[float]


class Planner:
    """One day's routes; `insert` places a job greedily, `plan` places many."""

    def __init__(
        self, day: date, engineers: Sequence[EngineerContext], policy: DispatchPolicy
    ) -> None:
        self.day = day
        self.origin = datetime(day.year, day.month, day.day, tzinfo=UTC)
        self.policy = policy
        self.speed_km_per_min = policy.travel.speed_kmh / 60
        self.detour = policy.travel.detour_factor
        self.routes = [r for r in (self._route(ctx) for ctx in engineers) if r is not None]
        self.pending: list[DispatchJob] = []

    # ------------------------------------------------------------------ set-up
    def minutes(self, moment: datetime) -> float:
        return (moment - self.origin).total_seconds() / 60

    def moment(self, minutes: float) -> datetime:
        return self.origin + timedelta(minutes=minutes)

    def _route(self, ctx: EngineerContext) -> Route | None:
        shifts = working_intervals(ctx.engineer, self.day, self.day)
        if not shifts:
            return None
        start, end = self.minutes(shifts[0].start), self.minutes(shifts[-1].end)
        route = Route(
            ctx=ctx,
            day_start=start,
            day_end=end,
            home_lat=math.radians(ctx.engineer.home.lat),
            home_lon=math.radians(ctx.engineer.home.lon),
            fixed_terms=self._fixed_terms(ctx),
        )
        blocks = [(a.end, b.start) for a, b in itertools.pairwise(shifts)]
        blocks += [(b.start, b.end) for b in live_intervals(ctx.bookings)]
        for n, (b_start, b_end) in enumerate(sorted(blocks)):
            first, last = self.minutes(b_start), self.minutes(b_end)
            if last <= start or first >= end:
                continue
            route.stops.append(
                Stop(f"pinned-{n}", math.nan, math.nan, last - first, pinned_start=first)
            )
        route.starts = self._schedule(route, route.stops) or []
        return route

    def _fixed_terms(self, ctx: EngineerContext) -> float:
        w = self.policy.score
        is_partner = ctx.engineer.kind is EngineerKind.PARTNER
        cost = ctx.partner.cost_per_visit if ctx.partner else ctx.engineer.cost_per_visit
        return w.cost * cost + w.partner * (1.0 if is_partner else 0.0)

    # ------------------------------------------------------------------ schedule
    def _km(self, lat1: float, lon1: float, lat2: float, lon2: float) -> float:
        if math.isnan(lat2) or math.isnan(lat1):
            return 0.0
        h = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h))) * self.detour

    def _schedule(self, route: Route, stops: Sequence[Stop]) -> list[float] | None:
        """Start minute of every stop, as early as possible; None when a pinned stop would
        move or the day overruns."""
        t, lat, lon = route.day_start, route.home_lat, route.home_lon
        step = self.policy.visit.slot_step_min
        starts = []
        for stop in stops:
            arrive = t + self._km(lat, lon, stop.lat, stop.lon) / self.speed_km_per_min
            if stop.pinned_start is not None:
                if arrive > stop.pinned_start + 1e-6:
                    return None
                begin = stop.pinned_start
            else:
                begin = math.ceil(max(arrive, stop.not_before) / step - 1e-9) * step
            starts.append(begin)
            t = begin + stop.duration
            if not math.isnan(stop.lat):
                lat, lon = stop.lat, stop.lon
        return starts if t <= route.day_end + 1e-6 else None

    def _route_km(self, route: Route, stops: Sequence[Stop]) -> float:
        lat, lon, km = route.home_lat, route.home_lon, 0.0
        for stop in stops:
            if math.isnan(stop.lat):
                continue
            km += self._km(lat, lon, stop.lat, stop.lon)
            lat, lon = stop.lat, stop.lon
        return km + self._km(lat, lon, route.home_lat, route.home_lon)

    # ------------------------------------------------------------------ insertion
    def _stop(self, job: DispatchJob) -> Stop:
        return Stop(
            key=job.ticket_id,
            lat=math.radians(job.location.lat),
            lon=math.radians(job.location.lon),
            duration=self.policy.visit.duration(job.category).total_seconds() / 60,
            not_before=self.minutes(job.parts_ready_at),
            due=self.minutes(job.sla_due),
            job=job,
        )

    def _insertion_cost(
        self, route: Route, stop: Stop, position: int, base_km: float
    ) -> tuple[float, list[float]] | None:
        stops = [*route.stops[:position], stop, *route.stops[position:]]
        starts = self._schedule(route, stops)
        if starts is None:
            return None
        w = self.policy.score
        job = stop.job
        assert job is not None
        end = starts[position] + stop.duration
        late_h = max(0.0, end - stop.due) / 60
        for index, (other, begin) in enumerate(zip(stops, starts, strict=True)):
            if index == position or other.job is None or begin + other.duration <= other.due:
                continue
            was = index if index < position else index - 1
            if begin + other.duration > max(route.starts[was] + other.duration, other.due):
                return None  # would make another visit (later) late
        span = max(stop.due - self.minutes(job.parts_ready_at), 1.0)
        used = min(1.0, max(0.0, (end - self.minutes(job.parts_ready_at)) / span))
        busy = sum(s.duration for s in route.stops if s.job is not None)
        load = busy / max(route.day_end - route.day_start, 1.0)
        km = self._route_km(route, stops) - base_km
        ftf = ftf_shortfall(route.ctx.ftf, self.policy)
        cost = (
            route.fixed_terms
            + w.travel_km * km
            + w.sla_used * used
            + w.load * load
            + w.first_time_fix * ftf
            + LATE_HOUR_PENALTY * late_h
        )
        return cost, starts

    def best_insertion(self, job: DispatchJob) -> _Insertion | None:
        stop = self._stop(job)
        best: _Insertion | None = None
        for n, route in enumerate(self.routes):
            if static_rule_failure(route.ctx, job, self.policy) is not None:
                continue
            base_km = self._route_km(route, route.stops)
            for position in range(len(route.stops) + 1):
                found = self._insertion_cost(route, stop, position, base_km)
                if found is not None and (best is None or found[0] < best.cost):
                    best = _Insertion(found[0], n, position, found[1])
        return best

    def insert(self, job: DispatchJob) -> bool:
        best = self.best_insertion(job)
        if best is None:
            return False
        route = self.routes[best.route]
        route.stops.insert(best.position, self._stop(job))
        route.starts = best.starts
        return True

    def plan(self, jobs: Sequence[DispatchJob]) -> DayPlan:
        order = sorted(jobs, key=lambda j: (j.sla_due, j.priority, j.ticket_id))
        self.pending = [j for j in order if not self.insert(j)]
        return self.result()

    def improve(self, rounds: int = 2) -> DayPlan:
        """Local search after `plan`: move each placed visit to its best place if that lowers
        its cost, then retry the visits nobody could take."""
        for _ in range(rounds):
            moved = sum(
                self._relocate(route, stop)
                for route in self.routes
                for stop in [s for s in route.stops if s.job is not None]
            )
            self.pending = [j for j in self.pending if not self.insert(j)]
            if not moved:
                break
        return self.result()

    def _relocate(self, route: Route, stop: Stop) -> bool:
        assert stop.job is not None
        index = route.stops.index(stop)
        kept_stops, kept_starts = route.stops, route.starts
        route.stops = kept_stops[:index] + kept_stops[index + 1 :]
        route.starts = self._schedule(route, route.stops) or []
        here = self._insertion_cost(route, stop, index, self._route_km(route, route.stops))
        best = self.best_insertion(stop.job)
        if here is None or best is None or best.cost >= here[0] - 1e-6:
            route.stops, route.starts = kept_stops, kept_starts
            return False
        target = self.routes[best.route]
        target.stops.insert(best.position, stop)
        target.starts = best.starts
        return True

    def result(self) -> DayPlan:
        unassigned = {j.ticket_id: "no_feasible_insertion" for j in self.pending}
        visits: list[PlannedVisit] = []
        km = 0.0
        for route in self.routes:
            km += self._route_km(route, route.stops) if any(s.job for s in route.stops) else 0
            for stop, begin in zip(route.stops, route.starts, strict=True):
                if stop.job is None:
                    continue
                visits.append(
                    PlannedVisit(
                        ticket_id=stop.key,
                        engineer_id=route.ctx.engineer.engineer_id,
                        start=self.moment(begin),
                        end=self.moment(begin + stop.duration),
                        late=begin + stop.duration > stop.due + 1e-6,
                    )
                )
        return DayPlan(visits=visits, unassigned=unassigned, travel_km=round(km, 1))

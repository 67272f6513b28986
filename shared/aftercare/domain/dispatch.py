"""Who goes, and when: when a ticket needs a visit, which engineers may go (hard rules) and in
which order they are asked (a score whose weights are data, `data/dispatch.yaml`).

When a ticket is dispatchable (`dispatch_trigger`): it is active and not yet under repair, and
- its fault code's catalog entry says the fault always needs a visit (`always_onsite`), or
- it carries `needs_onsite_dispatch`: diagnostics found a visit is needed, a remote fix failed,
  or an engineer said so (`POST /tickets/{id}/dispatch` sets the flag with the reason).

Hard rules (an engineer failing one is never a candidate; the reason is kept):
- active, and (partner engineers) their partner's contract covers the region;
- a skill for the ticket's model (or ``*``) and fault category (or ``*``) at the level the
  priority needs (`skills.level`);
- covers the ticket's region, and the site is within `travel.max_km`;
- a window in their working time (shifts in their time zone, minus absences and live bookings)
  that fits the travel from home and the visit, starts after the parts are ready (held now, or a
  backorder's expected arrival) and ends by the resolution deadline (SLA);
- a partner engineer's partner has fewer than its `daily_job_cap` visits that day.

Score of a candidate (lower is better) = sum of weight x term (weights in `score`):
- `sla_used`: share 0..1 of the time from now to the resolution deadline used when the visit ends;
- `travel_km`: estimated km to the site (haversine x detour factor);
- `load`: share 0..1 of the engineer's working time that day already booked (load balance);
- `first_time_fix`: 1 - the engineer's first-time-fix rate on this model and fault code,
  smoothed towards `ftf_prior_rate` with `ftf_prior_visits` pseudo-visits (few visits say little);
- `cost`: what the visit costs us (the partner's contract rate, or the engineer's own);
- `partner`: 1 for a partner engineer (in-house first), except in `partners.first_in_regions`
  where it is 1 for in-house engineers instead; never for a partner when SLA escalation set
  `partners_allowed` on the ticket (partners then compete on the other terms alone);
- `vip_preferred`: 1 when the customer prefers this engineer (a negative weight: a bonus); the
  job names preferred engineers only for tiers whose treatment (`channels.yaml`,
  `named_engineer_preference`) asks for it, today VIP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aftercare.domain.dispatch_policy import DispatchPolicy
from aftercare.domain.dispatch_time import (
    Interval,
    earliest_window,
    road_km,
    subtract,
    travel_time,
    working_intervals,
)
from aftercare.models.field import (
    LIVE_BOOKING_STATUSES,
    Booking,
    Engineer,
    EngineerKind,
    GeoPoint,
    Partner,
)
from aftercare.models.parts import LineStatus, PartsLine
from aftercare.models.tickets import (
    DISPATCHABLE_STATES,
    TicketFlag,
    TicketRecord,
)
from aftercare.models.visits import FIXED_OUTCOMES, VisitOutcome

DEFAULT_LEAD_DAYS = 14


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class DispatchTrigger(StrEnum):
    CATALOG = "catalog"  # the fault code always needs a visit
    FLAGGED = "flagged"  # diagnostics, a failed remote fix or an engineer flagged it


def dispatch_trigger(ticket: TicketRecord, always_onsite: bool) -> DispatchTrigger | None:
    """Why the ticket needs a visit now, or None (no visit needed, or past dispatching)."""
    if ticket.status not in DISPATCHABLE_STATES:
        return None
    if TicketFlag.NEEDS_ONSITE_DISPATCH in ticket.flags:
        return DispatchTrigger.FLAGGED
    return DispatchTrigger.CATALOG if always_onsite else None


def parts_ready_at(
    lines: Iterable[PartsLine], lead_days: Mapping[str, int], now: datetime
) -> datetime:
    """When every open parts line is in hand: now for held parts, a backorder's expected
    arrival (reserved + the part's supplier lead time) otherwise."""
    ready = now
    for line in lines:
        if line.status is LineStatus.BACKORDERED:
            arrival = line.reserved_at + timedelta(days=lead_days.get(line.sku, DEFAULT_LEAD_DAYS))
            ready = max(ready, arrival)
    return ready


class DispatchJob(_Frozen):
    """One visit to place: what the rules and the score read of a ticket."""

    ticket_id: str
    customer_id: str
    thing: str
    model: str
    category: str
    fault_code: str
    region: str
    priority: str
    tier: str
    location: GeoPoint
    sla_due: AwareDatetime
    parts_ready_at: AwareDatetime
    preferred_engineers: tuple[str, ...] = ()  # only when the tier's treatment prefers them
    partners_allowed: bool = False  # SLA escalation: no in-house-first preference


def job_for(
    ticket: TicketRecord,
    *,
    policy: DispatchPolicy,
    lead_days: Mapping[str, int],
    now: datetime,
    location: GeoPoint | None = None,
    preferred_engineers: Sequence[str] = (),
) -> DispatchJob:
    """The ticket as a visit to place; the site is the region's service centre when the
    ticket has no location of its own. Parts are ready now once a backorder the ticket was
    waiting for has arrived (`parts_arrived_at`)."""
    centre = policy.travel.region_centres.get(ticket.region, GeoPoint(lat=0, lon=0))
    return DispatchJob(
        ticket_id=ticket.ticket_id,
        customer_id=ticket.customer_id,
        thing=ticket.thing,
        model=ticket.model,
        category=ticket.category,
        fault_code=ticket.fault_code,
        region=ticket.region,
        priority=str(ticket.priority),
        tier=str(ticket.customer_tier),
        location=location or centre,
        sla_due=ticket.sla_resolution_due,
        parts_ready_at=now
        if ticket.parts_arrived_at is not None
        else parts_ready_at(ticket.parts, lead_days, now),
        preferred_engineers=tuple(preferred_engineers),
        partners_allowed=TicketFlag.PARTNERS_ALLOWED in ticket.flags,
    )


class FirstTimeFix(_Frozen):
    """An engineer's finished visits on one model and fault code, and how many fixed it."""

    visits: int = 0
    fixed: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[VisitOutcome]) -> FirstTimeFix:
        """Count finished visits only: one still under way or awaiting the device's verdict
        says nothing yet; a fix that did not last (`repeated`) is not a first-time fix."""
        finished = [o for o in outcomes if o in FINISHED_OUTCOMES]
        return cls(visits=len(finished), fixed=sum(o in FIXED_OUTCOMES for o in finished))


FINISHED_OUTCOMES = frozenset(VisitOutcome) - {VisitOutcome.IN_PROGRESS, VisitOutcome.COMPLETED}


class EngineerContext(_Frozen):
    """What dispatch knows of one engineer: the record, their partner, their live bookings in
    the horizon, their first-time-fix record on the job's model/code, their partner's visits
    per day (caps)."""

    engineer: Engineer
    partner: Partner | None = None
    bookings: tuple[Booking, ...] = ()
    ftf: FirstTimeFix = Field(default_factory=FirstTimeFix)
    partner_visits: dict[date, int] = Field(default_factory=dict)


class ScoreTerms(_Frozen):
    sla_used: float
    travel_km: float
    load: float
    first_time_fix: float
    cost: float
    partner: float
    vip_preferred: float

    def total(self, policy: DispatchPolicy) -> float:
        w = policy.score
        return (
            w.sla_used * self.sla_used
            + w.travel_km * self.travel_km
            + w.load * self.load
            + w.first_time_fix * self.first_time_fix
            + w.cost * self.cost
            + w.partner * self.partner
            + w.vip_preferred * self.vip_preferred
        )


class Candidate(_Frozen):
    engineer_id: str
    partner: str | None
    start: AwareDatetime
    end: AwareDatetime
    time_zone: str
    travel_km: float
    score: float
    terms: ScoreTerms | None = None  # None for a manual assignment (not scored)


class CandidateSearch(_Frozen):
    """Candidates best first, and why every other engineer was left out."""

    candidates: list[Candidate]
    rejected: dict[str, str]


def skill_level(engineer: Engineer, model: str, category: str) -> int:
    """The engineer's best level on this model and category (0: none)."""
    levels = [
        s.level
        for s in engineer.skills
        if s.model in ("*", model) and s.category in ("*", category)
    ]
    return max(levels, default=0)


def static_rule_failure(
    ctx: EngineerContext, job: DispatchJob, policy: DispatchPolicy
) -> str | None:
    """The first hard rule (other than time) the engineer fails, or None."""
    engineer = ctx.engineer
    needed = policy.skills.needed(job.priority)
    checks = [
        (not engineer.active, "inactive"),
        (engineer.kind is EngineerKind.PARTNER and ctx.partner is None, "partner_unknown"),
        (ctx.partner is not None and job.region not in ctx.partner.regions, "partner_contract"),
        (job.region not in engineer.regions, "region"),
        (skill_level(engineer, job.model, job.category) < needed, f"skill_below_{needed}"),
        (road_km(engineer.home, job.location, policy.travel) > policy.travel.max_km, "too_far"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def live_intervals(bookings: Iterable[Booking]) -> list[Interval]:
    return [Interval(b.start, b.end) for b in bookings if b.status in LIVE_BOOKING_STATUSES]


def local_day(moment: datetime, time_zone: str) -> date:
    return moment.astimezone(ZoneInfo(time_zone)).date()


def find_window(
    ctx: EngineerContext, job: DispatchJob, policy: DispatchPolicy, now: datetime
) -> Interval | None:
    """The engineer's earliest feasible visit for the job (time rules and partner caps)."""
    engineer = ctx.engineer
    rules = policy.travel
    travel = travel_time(road_km(engineer.home, job.location, rules), rules)
    not_before = max(now, job.parts_ready_at)
    deadline = min(job.sla_due, now + timedelta(days=policy.visit.horizon_days))
    if deadline <= not_before:
        return None
    first = local_day(not_before, engineer.time_zone)
    last = local_day(deadline, engineer.time_zone)
    free = subtract(working_intervals(engineer, first, last), live_intervals(ctx.bookings))
    capped = _capped_days(ctx, first, last)
    if capped:
        free = [g for g in free if local_day(g.start, engineer.time_zone) not in capped]
    return earliest_window(
        free,
        duration=policy.visit.duration(job.category),
        travel=travel,
        not_before=not_before,
        deadline=deadline,
        step=policy.visit.step,
    )


def _capped_days(ctx: EngineerContext, first: date, last: date) -> set[date]:
    if ctx.partner is None:
        return set()
    cap = ctx.partner.daily_job_cap
    return {d for d, n in ctx.partner_visits.items() if first <= d <= last and n >= cap}


def day_load(ctx: EngineerContext, day: date) -> float:
    """Share of the engineer's working time on local `day` already booked."""
    engineer = ctx.engineer
    working = working_intervals(engineer, day, day)
    total = sum((i.end - i.start for i in working), timedelta())
    if total <= timedelta():
        return 1.0
    booked = sum(
        (
            min(b.end, w.end) - max(b.start, w.start)
            for b in live_intervals(ctx.bookings)
            for w in working
            if b.overlaps(w)
        ),
        timedelta(),
    )
    return min(1.0, booked / total)


def ftf_shortfall(ftf: FirstTimeFix, policy: DispatchPolicy) -> float:
    """1 - the smoothed first-time-fix rate."""
    w = policy.score
    rate = (ftf.fixed + w.ftf_prior_rate * w.ftf_prior_visits) / (ftf.visits + w.ftf_prior_visits)
    return 1.0 - rate if ftf.visits + w.ftf_prior_visits > 0 else 0.0


def score_terms(
    ctx: EngineerContext,
    job: DispatchJob,
    window: Interval,
    policy: DispatchPolicy,
    now: datetime,
    *,
    travel_km: float,
    load: float,
) -> ScoreTerms:
    engineer = ctx.engineer
    span = (job.sla_due - now).total_seconds()
    used = (window.end - now).total_seconds() / span if span > 0 else 1.0
    is_partner = engineer.kind is EngineerKind.PARTNER
    partner_first = job.region in policy.partners.first_in_regions
    penalised = is_partner != partner_first and not (is_partner and job.partners_allowed)
    cost = ctx.partner.cost_per_visit if ctx.partner is not None else engineer.cost_per_visit
    return ScoreTerms(
        sla_used=min(1.0, max(0.0, used)),
        travel_km=travel_km,
        load=load,
        first_time_fix=ftf_shortfall(ctx.ftf, policy),
        cost=cost,
        partner=1.0 if penalised else 0.0,
        vip_preferred=1.0 if engineer.engineer_id in job.preferred_engineers else 0.0,
    )


def find_candidates(
    job: DispatchJob,
    engineers: Iterable[EngineerContext],
    policy: DispatchPolicy,
    now: datetime,
) -> CandidateSearch:
    """Every engineer who may go, with their earliest feasible visit, best score first."""
    found: list[Candidate] = []
    rejected: dict[str, str] = {}
    for ctx in engineers:
        engineer = ctx.engineer
        failure = static_rule_failure(ctx, job, policy)
        window = None if failure else find_window(ctx, job, policy, now)
        if failure or window is None:
            rejected[engineer.engineer_id] = failure or "no_window_inside_sla"
            continue
        km = road_km(engineer.home, job.location, policy.travel)
        load = day_load(ctx, local_day(window.start, engineer.time_zone))
        terms = score_terms(ctx, job, window, policy, now, travel_km=km, load=load)
        found.append(
            Candidate(
                engineer_id=engineer.engineer_id,
                partner=engineer.partner,
                start=window.start,
                end=window.end,
                time_zone=engineer.time_zone,
                travel_km=round(km, 2),
                score=round(terms.total(policy), 4),
                terms=terms,
            )
        )
    found.sort(key=lambda c: (c.score, c.start, c.engineer_id))
    return CandidateSearch(candidates=found, rejected=rejected)


def auto_books(job: DispatchJob, policy: DispatchPolicy) -> bool:
    """Whether the policy books this ticket's earliest feasible visit without the customer."""
    return policy.auto_book.applies(job.priority, job.tier, escalated=job.partners_allowed)

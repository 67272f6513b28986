"""Service KPIs: facts merged order-independently, the counters they contribute, and the figures
computed from summed counters (definitions in README "Service KPIs"; numbers in data/kpis.yaml).

Exactly once: the aggregator keeps each ticket's, visit's and booking's merged facts. A stream
record's facts are merged into them; the counters move by the *difference* between what the
merged facts contribute and what the stored facts contributed. A redelivered record changes no
fact (difference zero); a record arriving late (an earlier move out of `open`, a visit's
outcome overtaken by `repeated`) changes the contributions, and the difference is the
compensation (a repeat within the window takes back a first-time fix).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from aftercare.data import DATA_FOLDER, load
from aftercare.models.kpis import (
    BookingFacts,
    Counters,
    Facts,
    KpiDefinitions,
    TicketFacts,
    VisitFacts,
)

if TYPE_CHECKING:  # only the KPI API's utilisation reads engineers, not the aggregator
    from aftercare.models.field import Engineer

ACTIVE_STATUSES = ("open", "diagnosing", "awaiting_parts", "scheduled", "in_repair")
FIXED = frozenset({"verified", "unverified"})
VISIT_VERDICTS = frozenset({"verified", "unverified", "failed", "cannot_complete", "repeated"})
OUTCOME_RANK = {"in_progress": 0, "completed": 1, "repeated": 3}  # other verdicts: 2
DAY = "DAY"
OPENED = "OPENED"
RATIO_DIGITS = 4
MINUTE_DIGITS = 1

# (dimension key "region#eu-west", period "DAY#2026-12-01", counter) -> value
Contributions = dict[tuple[str, str, str], int]


class InvalidRange(ValueError):
    """A KPI period that is empty, reversed or longer than the definitions allow."""


@cache
def load_kpi_definitions() -> KpiDefinitions:
    """The KPI definitions shipped with this build (`data/kpis.yaml`)."""
    return KpiDefinitions.model_validate(load(DATA_FOLDER, "kpis.yaml"))


# ---- merging


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def _first_seen_dims(a: TicketFacts, b: TicketFacts) -> TicketFacts:
    """The side whose dimensions come from the lower ticket version (priority as opened)."""
    if a.dims is None or b.dims is None:
        return b if a.dims is None else a
    return a if (a.dims_version or 0) <= (b.dims_version or 0) else b


def merge_ticket(a: TicketFacts, b: TicketFacts) -> TicketFacts:
    dims_from = _first_seen_dims(a, b)
    status_from = a if (a.status_version or 0) >= (b.status_version or 0) else b
    resolved_from = (
        a if a.resolved_at and (not b.resolved_at or a.resolved_at <= b.resolved_at) else b
    )
    breaches = dict(a.breaches)
    for target, at in b.breaches.items():
        breaches[target] = min(at, breaches.get(target, at))
    answered = a if a.survey_answered_at else b
    return TicketFacts(
        ticket_id=a.ticket_id,
        dims=dims_from.dims,
        dims_version=dims_from.dims_version,
        opened_at=a.opened_at or b.opened_at,
        sla_response_due=a.sla_response_due or b.sla_response_due,
        sla_resolution_due=a.sla_resolution_due or b.sla_resolution_due,
        status=status_from.status or a.status or b.status,
        status_version=status_from.status_version,
        first_response_at=_earliest(a.first_response_at, b.first_response_at),
        resolved_at=resolved_from.resolved_at,
        resolution=resolved_from.resolution,
        resolved_by=resolved_from.resolved_by,
        repeated=a.repeated or b.repeated,
        breaches=breaches,
        survey_sent_at=_earliest(a.survey_sent_at, b.survey_sent_at),
        survey_answered_at=answered.survey_answered_at,
        survey_rating=answered.survey_rating,
    )


def _rank(outcome: str | None) -> tuple[int, str]:
    if outcome is None:
        return (-1, "")
    return (OUTCOME_RANK.get(outcome, 2), outcome)


def merge_visit(a: VisitFacts, b: VisitFacts) -> VisitFacts:
    days = [d for d in (a.day, b.day) if d is not None]
    return VisitFacts(
        booking_id=a.booking_id,
        engineer_id=a.engineer_id or b.engineer_id,
        partner=a.partner or b.partner,
        model=a.model or b.model,
        day=min(days) if days else None,
        outcome=max(a.outcome, b.outcome, key=_rank),
        started=a.started or b.started,
    )


def merge_booking(a: BookingFacts, b: BookingFacts) -> BookingFacts:
    return a if a.version >= b.version else b


def merge(stored: Facts | None, incoming: Facts) -> Facts:
    """The facts known after `incoming` (commutative, associative and idempotent)."""
    if stored is None:
        return incoming
    if isinstance(stored, TicketFacts) and isinstance(incoming, TicketFacts):
        return merge_ticket(stored, incoming)
    if isinstance(stored, VisitFacts) and isinstance(incoming, VisitFacts):
        return merge_visit(stored, incoming)
    if isinstance(stored, BookingFacts) and isinstance(incoming, BookingFacts):
        return merge_booking(stored, incoming)
    raise TypeError(f"cannot merge {type(stored).__name__} with {type(incoming).__name__}")


# ---- contributions


def bucket(defs: KpiDefinitions, histogram: str, seconds: int) -> str:
    """The histogram counter a duration falls in (upper bounds in minutes, inclusive)."""
    bounds = defs.histograms[histogram]
    index = next((i for i, b in enumerate(bounds) if seconds <= b * 60), len(bounds))
    return f"{histogram}_h{index}"


def _add(out: Contributions, dims: Iterable[str], period: str, counters: Counters) -> None:
    for dim in dims:
        for name, value in counters.items():
            if value:
                key = (dim, period, name)
                out[key] = out.get(key, 0) + value


def dim_keys(dims: Mapping[str, str | None]) -> list[str]:
    return [f"{name}#{value}" for name, value in dims.items() if value]


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _day(at: datetime) -> str:
    return f"{DAY}#{utc_day(at).isoformat()}"


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


def ticket_contributions(facts: TicketFacts, defs: KpiDefinitions) -> Contributions:
    out: Contributions = {}
    if facts.dims is None or facts.opened_at is None:
        return out  # counted once the ticket's record is known
    opened = facts.opened_at
    dims = dim_keys(facts.dims)
    _add(out, dims, _day(opened), {"opened": 1})
    if facts.first_response_at is not None:
        secs = _seconds(opened, facts.first_response_at)
        in_sla = (
            facts.sla_response_due is not None and facts.first_response_at <= facts.sla_response_due
        )
        counters = {"responded": 1, "response_s": secs, bucket(defs, "response", secs): 1}
        _add(out, dims, _day(facts.first_response_at), counters | {"response_in_sla": int(in_sla)})
    if facts.resolved_at is not None:
        _add(
            out,
            dims + dim_keys({"engineer": facts.resolved_by}),
            _day(facts.resolved_at),
            _resolved(facts, defs),
        )
    for target, at in facts.breaches.items():
        _add(out, dims, _day(at), {f"breached_{_safe(target)}": 1})
    if facts.survey_sent_at is not None:
        _add(out, dims, _day(facts.survey_sent_at), {"surveys_sent": 1})
    if facts.survey_answered_at is not None and facts.survey_rating is not None:
        rating = facts.survey_rating
        counters = {"surveys_answered": 1, "surveys_satisfied": int(rating >= 4)}
        _add(out, dims, _day(facts.survey_answered_at), counters | {"rating_sum": rating})
    if facts.status in ACTIVE_STATUSES:
        _add(out, dims, f"{OPENED}#{utc_day(opened).isoformat()}", {f"backlog_{facts.status}": 1})
    return out


def _resolved(facts: TicketFacts, defs: KpiDefinitions) -> Counters:
    assert facts.resolved_at is not None and facts.opened_at is not None
    secs = _seconds(facts.opened_at, facts.resolved_at)
    due = facts.sla_resolution_due
    return {
        "resolved": 1,
        "resolve_s": secs,
        bucket(defs, "resolve", secs): 1,
        "resolved_in_sla": int(due is not None and facts.resolved_at <= due),
        f"resolved_{_safe(facts.resolution or 'unknown')}": 1,
        "resolved_repeated": int(facts.repeated),
    }


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower())[:32]


def visit_contributions(facts: VisitFacts) -> Contributions:
    out: Contributions = {}
    if facts.day is None or facts.engineer_id is None:
        return out
    dims = dim_keys(
        {
            "all": "all",
            "engineer": facts.engineer_id,
            "partner": facts.partner,
            "model": facts.model,
        }
    )
    period = f"{DAY}#{facts.day.isoformat()}"
    counters = {"visits_started": int(facts.started)}
    if facts.outcome in VISIT_VERDICTS:
        counters |= {
            "visits_verdict": 1,
            "visits_fixed": int(facts.outcome in FIXED),
            f"visits_{facts.outcome}": 1,
        }
    _add(out, dims, period, counters)
    return out


def booking_contributions(facts: BookingFacts) -> Contributions:
    out: Contributions = {}
    if facts.status in (None, "cancelled") or not (facts.start and facts.end and facts.engineer_id):
        return out
    dims = dim_keys(
        {
            "all": "all",
            "engineer": facts.engineer_id,
            "partner": facts.partner,
            "region": facts.region,
        }
    )
    _add(
        out, dims, _day(facts.start), {"bookings": 1, "booked_s": _seconds(facts.start, facts.end)}
    )
    return out


def contributions(facts: Facts | None, defs: KpiDefinitions) -> Contributions:
    if facts is None:
        return {}
    if isinstance(facts, TicketFacts):
        return ticket_contributions(facts, defs)
    if isinstance(facts, VisitFacts):
        return visit_contributions(facts)
    return booking_contributions(facts)


def difference(before: Contributions, after: Contributions) -> Contributions:
    """What the counters must move by (zero entries left out)."""
    keys = set(before) | set(after)
    moved = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in moved.items() if v}


def counter_updates(diff: Contributions) -> dict[tuple[str, str], Counters]:
    """The difference grouped by aggregate item (dimension key, period)."""
    items: dict[tuple[str, str], Counters] = {}
    for (dim, period, name), value in sorted(diff.items()):
        items.setdefault((dim, period), {})[name] = value
    return items


# ---- figures


def check_range(first: date, last: date, defs: KpiDefinitions) -> None:
    if last < first:
        raise InvalidRange(f"`to` ({last}) is before `from` ({first})")
    days = (last - first).days + 1
    if days > defs.max_range_days:
        raise InvalidRange(f"{days} days asked; at most {defs.max_range_days}")


def sum_counters(rows: Iterable[Mapping[str, Any]]) -> Counters:
    total: Counters = {}
    for row in rows:
        for name, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[name] = total.get(name, 0) + int(value)
    return total


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, RATIO_DIGITS) if whole else None


def percentile(c: Counters, defs: KpiDefinitions, histogram: str, q: float) -> float | None:
    """The upper bound (minutes) of the bucket holding rank ceil(q·n); above the last bound:
    the last bound (a lower bound of the true value)."""
    bounds = defs.histograms[histogram]
    counts = [c.get(f"{histogram}_h{i}", 0) for i in range(len(bounds) + 1)]
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return float(bounds[min(index, len(bounds) - 1)])
    return float(bounds[-1])  # pragma: no cover - the loop always reaches the rank


def mean_minutes(total_seconds: int, count: int) -> float | None:
    return round(total_seconds / count / 60, MINUTE_DIGITS) if count else None


def figures(c: Counters, defs: KpiDefinitions, working_seconds: int | None) -> dict[str, Any]:
    """Every KPI of one group from its summed counters (README "Service KPIs")."""
    resolved = c.get("resolved", 0)
    busy = c.get("booked_s", 0) + c.get("bookings", 0) * defs.travel_minutes_per_booking * 60
    return {
        "opened": c.get("opened", 0),
        "responded": c.get("responded", 0),
        "response_mean_min": mean_minutes(c.get("response_s", 0), c.get("responded", 0)),
        "response_median_min": percentile(c, defs, "response", 0.5),
        "response_p90_min": percentile(c, defs, "response", 0.9),
        "resolved": resolved,
        "resolve_mean_min": mean_minutes(c.get("resolve_s", 0), resolved),
        "resolve_median_min": percentile(c, defs, "resolve", 0.5),
        "resolve_p90_min": percentile(c, defs, "resolve", 0.9),
        "first_time_fix_rate": ratio(c.get("visits_fixed", 0), c.get("visits_verdict", 0)),
        "repair_success_rate": ratio(resolved - c.get("resolved_repeated", 0), resolved),
        "remote_fix_ratio": ratio(c.get("resolved_remote", 0), resolved),
        "self_service_ratio": ratio(c.get("resolved_self_service", 0), resolved),
        "repeat_fault_rate": ratio(c.get("resolved_repeated", 0), resolved),
        "sla_response_compliance": ratio(c.get("response_in_sla", 0), c.get("responded", 0)),
        "sla_resolution_compliance": ratio(c.get("resolved_in_sla", 0), resolved),
        "sla_breaches": c.get("breached_response", 0) + c.get("breached_resolution", 0),
        "csat": ratio(c.get("surveys_satisfied", 0), c.get("surveys_answered", 0)),
        "survey_response_rate": ratio(c.get("surveys_answered", 0), c.get("surveys_sent", 0)),
        "surveys_answered": c.get("surveys_answered", 0),
        "visits": c.get("visits_verdict", 0),
        "visits_started": c.get("visits_started", 0),
        "visits_could_not_complete": c.get("visits_cannot_complete", 0),
        "visits_failed_verification": c.get("visits_failed", 0),
        "bookings": c.get("bookings", 0),
        "utilisation": ratio(busy, working_seconds) if working_seconds else None,
    }


def backlog(
    rows: Mapping[date, Mapping[str, Any]], today: date, defs: KpiDefinitions
) -> dict[str, Any]:
    """Active tickets now, by status and by age (days since opening) from the per-opening-day
    counters."""
    by_status: dict[str, int] = {status: 0 for status in ACTIVE_STATUSES}
    bounds = defs.backlog_age_days
    labels = [f"<={b}d" for b in bounds] + [f">{bounds[-1]}d"]
    by_age = dict.fromkeys(labels, 0)
    for opened, counters in rows.items():
        age = (today - opened).days
        label = labels[next((i for i, b in enumerate(bounds) if age <= b), len(bounds))]
        for status in ACTIVE_STATUSES:
            count = int(counters.get(f"backlog_{status}", 0))
            by_status[status] += count
            by_age[label] += count
    return {"total": sum(by_status.values()), "by_status": by_status, "by_age": by_age}


def working_seconds(engineers: Iterable[Engineer], first: date, last: date) -> int:
    """The engineers' working time (shifts minus absences) from `first` to `last`."""
    from aftercare.domain.dispatch_time import working_intervals

    total = timedelta()
    for engineer in engineers:
        for interval in working_intervals(engineer, first, last):
            total += interval.end - interval.start
    return int(total.total_seconds())

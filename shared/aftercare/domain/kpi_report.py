"""`GET /kpis` and `aftercare kpis`: the figures of a period, in total, per dimension value, or
per day (`by=day`, the trend a dashboard draws, in one read of each day's counters).

Managers see every group; an engineer sees only their own engineer dimension; customers none.
"""

from __future__ import annotations

from datetime import date, timedelta

from aftercare.domain.access import Caller, Forbidden
from aftercare.domain.kpis import (
    InvalidRange,
    backlog,
    check_range,
    figures,
    load_kpi_definitions,
    sum_counters,
    working_seconds,
)
from aftercare.domain.ports.kpis import Engineers, KpiReads
from aftercare.models.field import Engineer
from aftercare.models.kpis import KpiFigures

DEFAULT_DAYS = 30
SERIES = "day"  # `by=day`: one figure set per day of the period, oldest first


class InvalidDimension(ValueError):
    """`by` names no KPI dimension."""


def period_of(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """The asked period (default: the 30 days up to today), checked (InvalidRange)."""
    end = last or today
    try:
        start = first or end - timedelta(days=DEFAULT_DAYS - 1)
    except OverflowError:
        raise InvalidRange(f"`to` ({end}) leaves no {DEFAULT_DAYS} days before it") from None
    check_range(start, end, load_kpi_definitions())
    return start, end


def _engineers_of(dim: str, engineers: list[Engineer]) -> list[Engineer] | None:
    """Whose working time a group's utilisation divides by (None: not a staffed group)."""
    name, value = dim.split("#", 1)
    active = [e for e in engineers if e.active]
    chosen = {
        "all": active,
        "engineer": [e for e in active if e.engineer_id == value],
        "partner": [e for e in active if e.partner == value],
        "region": [e for e in active if value in e.regions],
    }.get(name)
    return chosen or None


def group_figures(
    reads: KpiReads, engineers: list[Engineer], dim: str, *, first: date, last: date, today: date
) -> KpiFigures:
    defs = load_kpi_definitions()
    staff = _engineers_of(dim, engineers)
    working = working_seconds(staff, first, last) if staff else None
    kpis = figures(sum_counters(reads.counters(dim, first, last)), defs, working)
    kpis["backlog"] = backlog(reads.backlog_rows(dim), today, defs)
    name, value = dim.split("#", 1)
    return KpiFigures(
        period={"from": first.isoformat(), "to": last.isoformat()},
        group=None if name == "all" else {name: value},
        kpis=kpis,
    )


def daily_figures(
    reads: KpiReads, engineers: list[Engineer], dim: str, *, first: date, last: date
) -> list[KpiFigures]:
    """One group's figures for each day from `first` to `last` (days without events too), as
    a one-day period would give them, without `backlog` (a figure of now, not of a day)."""
    defs = load_kpi_definitions()
    staff = _engineers_of(dim, engineers)
    rows = reads.daily_counters(dim, first, last)
    name, value = dim.split("#", 1)
    group = {} if name == "all" else {name: value}
    series = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        working = working_seconds(staff, day, day) if staff else None
        kpis = figures(sum_counters([rows[day]] if day in rows else []), defs, working)
        series.append(
            KpiFigures(
                period={"from": day.isoformat(), "to": day.isoformat()},
                group={SERIES: day.isoformat()} | group,
                kpis=kpis,
            )
        )
    return series


def kpi_report(
    reads: KpiReads,
    directory: Engineers,
    caller: Caller,
    *,
    first: date | None,
    last: date | None,
    by: str | None,
    today: date,
) -> KpiFigures | list[KpiFigures]:
    """The total (no `by`), one figure set per value of `by`, or per day (`by=day`: the
    caller's total group, each day), as far as the caller may see."""
    defs = load_kpi_definitions()
    if not caller.staff:
        raise Forbidden("KPIs are for engineers and managers")
    if by is not None and by != SERIES and (by not in defs.dimensions or by == "all"):
        choices = ", ".join([*defs.dimensions[1:], SERIES])
        raise InvalidDimension(f"by={by!r}: one of {choices}")
    start, end = period_of(first, last, today)
    engineers = directory.list_engineers()
    if by == SERIES:
        dim = "all#all" if caller.manager else f"engineer#{caller.require_field_engineer()}"
        return daily_figures(reads, engineers, dim, first=start, last=end)
    if not caller.manager:
        own = caller.require_field_engineer()
        if by not in (None, "engineer"):
            raise Forbidden("engineers see only their own figures (by=engineer, by=day)")
        mine = group_figures(
            reads, engineers, f"engineer#{own}", first=start, last=end, today=today
        )
        return [mine] if by else mine
    if by is None:
        return group_figures(reads, engineers, "all#all", first=start, last=end, today=today)
    values = sorted(reads.dimension_values(by))
    return [
        group_figures(reads, engineers, f"{by}#{v}", first=start, last=end, today=today)
        for v in values
    ]


__all__ = ["SERIES", "InvalidDimension", "InvalidRange", "daily_figures", "kpi_report", "period_of"]

"""Time and distance for dispatch: travel estimates from locations, an engineer's working time
as UTC intervals (shifts in their own time zone, minus absences), and the earliest window that
fits a visit between their other visits.

Pure functions; the intervals are half-open `[start, end)`, every instant timezone-aware.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aftercare.models.field import Engineer, GeoPoint, Weekday

if TYPE_CHECKING:  # the working-time arithmetic (KPIs) needs no dispatch policy
    from aftercare.domain.dispatch_policy import TravelRules

EARTH_RADIUS_KM = 6371.0
WEEKDAYS = list(Weekday)  # Monday first, as date.weekday() counts


@dataclass(frozen=True, order=True)
class Interval:
    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def haversine_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance between two points."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def road_km(a: GeoPoint, b: GeoPoint, rules: TravelRules) -> float:
    """Estimated road distance: great-circle distance times the detour factor."""
    return haversine_km(a, b) * rules.detour_factor


def travel_time(km: float, rules: TravelRules) -> timedelta:
    return timedelta(hours=km / rules.speed_kmh)


def working_intervals(engineer: Engineer, first: date, last: date) -> list[Interval]:
    """The engineer's shifts from `first` to `last` (their local dates) in UTC, minus absences."""
    zone = ZoneInfo(engineer.time_zone)
    shifts: list[Interval] = []
    day = first
    while day <= last:
        for shift in engineer.working_hours.get(WEEKDAYS[day.weekday()], []):
            start = datetime.combine(day, shift.start, tzinfo=zone)
            end = datetime.combine(day, shift.end, tzinfo=zone)
            if end > start:
                shifts.append(Interval(start, end))
        day += timedelta(days=1)
    return subtract(shifts, [Interval(a.start, a.end) for a in engineer.absences])


def subtract(intervals: Iterable[Interval], busy: Iterable[Interval]) -> list[Interval]:
    """`intervals` with every `busy` interval cut out (sorted, empty pieces dropped)."""
    pieces = sorted(intervals)
    for block in sorted(busy):
        cut: list[Interval] = []
        for piece in pieces:
            if not piece.overlaps(block):
                cut.append(piece)
                continue
            if piece.start < block.start:
                cut.append(Interval(piece.start, block.start))
            if block.end < piece.end:
                cut.append(Interval(block.end, piece.end))
        pieces = cut
    return pieces


def align_up(moment: datetime, step: timedelta) -> datetime:
    """The first instant at or after `moment` on the `step` grid (counted from the epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = math.ceil((moment.astimezone(UTC) - epoch) / step)
    return epoch + steps * step


def earliest_window(
    free: Sequence[Interval],
    *,
    duration: timedelta,
    travel: timedelta,
    not_before: datetime,
    deadline: datetime,
    step: timedelta,
) -> Interval | None:
    """The earliest visit `[start, start + duration)` on the step grid such that the travel to
    it and the visit both fit inside one free interval, starting no earlier than `not_before`
    and ending by `deadline`; None when there is none."""
    for gap in free:
        start = align_up(max(gap.start + travel, not_before), step)
        end = start + duration
        if end > deadline:
            return None
        if end <= gap.end:
            return Interval(start, end)
    return None

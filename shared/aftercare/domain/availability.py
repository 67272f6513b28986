"""When an engineer can take a visit: working hours in their own time zone (DST-safe, from
zoneinfo), minus absences, minus what the calendar already holds; and the slot ids that name
one engineer's window.

Pure functions: the calendar's contents arrive as `BusyInterval`s; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aftercare.domain.ports.field import BusyInterval
from aftercare.models.field import Engineer, Weekday

WEEKDAYS = (
    Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI, Weekday.SAT, Weekday.SUN
)  # fmt: skip
GRID = timedelta(minutes=15)
SLOT_PREFIX = "S-"
MAX_VISIT_MINUTES = 8 * 60
STAMP = "%Y%m%dT%H%MZ"


class InvalidSlot(ValueError):
    """A slot id that is malformed or names no bookable window."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SlotRef:
    """What a slot id encodes: one engineer's window."""

    engineer_id: str
    start: datetime
    minutes: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


def slot_id(engineer_id: str, start: datetime, minutes: int) -> str:
    """`S-<engineer>.<UTC start>.<minutes>`: engineer ids cannot contain a dot."""
    return f"{SLOT_PREFIX}{engineer_id}.{start.astimezone(UTC).strftime(STAMP)}.{minutes}"


def parse_slot_id(value: str) -> SlotRef:
    parts = value.removeprefix(SLOT_PREFIX).split(".")
    if not value.startswith(SLOT_PREFIX) or len(parts) != 3:
        raise InvalidSlot(f"{value!r} is not a slot id")
    engineer_id, stamp, minutes = parts
    try:
        start = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
        length = int(minutes)
    except ValueError as exc:
        raise InvalidSlot(f"{value!r} is not a slot id") from exc
    if not 0 < length <= MAX_VISIT_MINUTES or length % 15 or start.minute % 15:
        raise InvalidSlot(f"{value!r} is not a visit on the 15-minute grid")
    if start > datetime.max.replace(tzinfo=UTC) - timedelta(days=1):
        raise InvalidSlot(f"{value!r} is beyond the calendar")
    return SlotRef(engineer_id=engineer_id, start=start, minutes=length)


def working_windows(engineer: Engineer, start: datetime, end: datetime) -> list[Window]:
    """The engineer's shifts between `start` and `end` as UTC windows, absences removed.

    Shifts are wall-clock times in the engineer's zone: each local date's shift is placed with
    zoneinfo, so a DST change moves it in UTC and never stretches or shrinks it by an hour,
    except on the change night itself, where the wall clock really is shorter or longer."""
    zone = ZoneInfo(engineer.time_zone)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    windows: list[Window] = []
    for day in _dates(first, last):
        for shift in engineer.working_hours.get(WEEKDAYS[day.weekday()], []):
            opens = _utc(day, shift.start, zone)
            closes = _utc(day, shift.end, zone)
            opens, closes = max(opens, start), min(closes, end)
            if closes > opens:
                windows.append(Window(opens, closes))
    absences = [Window(a.start.astimezone(UTC), a.end.astimezone(UTC)) for a in engineer.absences]
    return subtract(windows, absences)


def _dates(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    # fold=0: a wall time repeated by a fall-back is its first instant; one inside a
    # spring-forward gap (which does not exist) lands just after the gap.
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def subtract(windows: Iterable[Window], taken: Iterable[Window]) -> list[Window]:
    """`windows` minus every interval of `taken`."""
    out = sorted(windows, key=lambda w: w.start)
    for cut in sorted(taken, key=lambda w: w.start):
        out = [piece for w in out for piece in _minus(w, cut)]
    return out


def _minus(window: Window, cut: Window) -> list[Window]:
    if cut.end <= window.start or cut.start >= window.end:
        return [window]
    pieces = []
    if cut.start > window.start:
        pieces.append(Window(window.start, cut.start))
    if cut.end < window.end:
        pieces.append(Window(cut.end, window.end))
    return pieces


def free_windows(
    engineer: Engineer,
    start: datetime,
    end: datetime,
    busy: Sequence[BusyInterval],
    *,
    holder: str | None = None,
) -> list[Window]:
    """Working time with nothing on the calendar (`holder`'s own holds count as free)."""
    taken = [Window(b.start, b.end) for b in busy if holder is None or b.holder != holder]
    return subtract(working_windows(engineer, start, end), taken)


def starts_in(windows: Iterable[Window], length: timedelta, step: timedelta) -> Iterator[datetime]:
    """Every start on the `step` grid (UTC) where a visit of `length` fits in a window."""
    for window in windows:
        at = _ceil(window.start, step)
        while at + length <= window.end:
            yield at
            at += step


def _ceil(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = -((epoch - at) // step)
    return epoch + steps * step


def fits(engineer: Engineer, start: datetime, end: datetime) -> bool:
    """Whether `start`..`end` lies inside one of the engineer's working windows."""
    return any(w.start <= start and end <= w.end for w in working_windows(engineer, start, end))

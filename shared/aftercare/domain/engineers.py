"""The engineer directory as staff see it: engineers list it, managers edit it."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aftercare.domain.access import Caller, Forbidden, Group
from aftercare.domain.ports.field import EngineerDirectory
from aftercare.models.field import Engineer, EngineerKind


class InvalidEngineer(ValueError):
    """An engineer record the directory refuses (its id, partner or time zone)."""


def list_engineers(
    caller: Caller, directory: EngineerDirectory, region: str | None = None
) -> list[Engineer]:
    if not caller.staff:
        raise Forbidden("the engineer directory is for staff")
    return sorted(directory.list_engineers(region), key=lambda e: e.engineer_id)


def put_engineer(
    caller: Caller, directory: EngineerDirectory, engineer_id: str, engineer: Engineer
) -> Engineer:
    """Create or replace an engineer (managers): the id must match the path, a partner
    engineer's company must exist, and the time zone must be a real IANA zone."""
    if Group.MANAGERS not in caller.groups:
        raise Forbidden("only managers edit engineers")
    if engineer.engineer_id != engineer_id:
        raise InvalidEngineer(f"the body is {engineer.engineer_id}, the path {engineer_id}")
    if (engineer.kind is EngineerKind.PARTNER) != (engineer.partner is not None):
        raise InvalidEngineer("a partner engineer names its partner; an in-house one does not")
    if engineer.partner and engineer.partner not in {
        p.partner_id for p in directory.list_partners()
    }:
        raise InvalidEngineer(f"no partner {engineer.partner}")
    try:
        ZoneInfo(engineer.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long
        raise InvalidEngineer(f"unknown time zone {engineer.time_zone!r}") from exc
    for shifts in engineer.working_hours.values():
        if any(s.end <= s.start for s in shifts):
            raise InvalidEngineer("a shift ends after it starts")
    directory.put_engineer(engineer)
    return engineer

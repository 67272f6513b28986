"""Field service's API bodies and views (booking, rescheduling, the engineer directory)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from aftercare.models.field import Engineer, EngineerKind, PartnerId, Skill, SlotId

Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class BookSlot(BaseModel):
    """Book one of the slots `GET /tickets/{id}/slots` offered."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    slot_id: SlotId


class RescheduleBooking(BaseModel):
    """Move a booking to another offered slot; the old window is freed in the same write."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    slot_id: SlotId
    reason: Reason


class CancelBooking(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    reason: Reason


class EngineerRow(BaseModel):
    """One engineer in a listing (`aftercare engineers list --json`)."""

    model_config = ConfigDict(defer_build=True)

    engineer_id: str
    name: str
    kind: EngineerKind
    partner: PartnerId | None = None
    skills: list[Skill]
    regions: list[str]
    time_zone: str
    active: bool = True

    @classmethod
    def of(cls, engineer: Engineer) -> EngineerRow:
        return cls.model_validate(engineer.model_dump(include=set(cls.model_fields)))

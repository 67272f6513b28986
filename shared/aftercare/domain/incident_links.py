"""The link between a fleet incident and one of its child tickets, written with the child
ticket: apart from the incident rules (`aftercare.domain.incidents`), so the ticket records
that carry it (`ports.records`) do not define every incident model."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict


class IncidentLink(BaseModel):
    """The child link item written with the child ticket (in its transaction)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    incident_id: str
    ticket_id: str
    thing: str
    customer_id: str
    region: str
    firmware: str
    shard: int
    linked_at: AwareDatetime
    before_threshold: bool = False
